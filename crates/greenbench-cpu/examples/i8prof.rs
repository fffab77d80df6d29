use greenbench_core::quant::quantize;
use greenbench_core::{Backend, Model, generate_inputs};
fn main() {
    let name = std::env::args().nth(1).unwrap();
    let batch: usize = std::env::args().nth(2).unwrap().parse().unwrap();
    let m = Model::load(&name, 0).unwrap();
    let qm = quantize(
        &m.graph,
        &m.weights,
        &generate_inputs(&m.graph, 8, 0, 9),
        &if std::env::var("RQ").is_ok() {
            greenbench_core::quant::QuantConfig {
                requantizer: greenbench_core::quant::Requantizer::Fp32,
                ..Default::default()
            }
        } else {
            Default::default()
        },
    )
    .unwrap();
    let cpu = greenbench_cpu::CpuBackend::on_this_thread(1).unwrap();
    let x = generate_inputs(&m.graph, batch, 0, 0);
    let mut p = cpu.prepare_quantized(&qm, batch).unwrap();
    let mut fp = cpu.prepare(&m.graph, &m.weights, batch).unwrap();
    for _ in 0..20 {
        p.run(&x).unwrap();
        fp.run(&x).unwrap();
    }
    let n = 200;
    let t = std::time::Instant::now();
    for _ in 0..n {
        p.run(&x).unwrap();
    }
    let ti = t.elapsed().as_secs_f64() / (n * batch) as f64;
    let t = std::time::Instant::now();
    for _ in 0..n {
        fp.run(&x).unwrap();
    }
    let tf = t.elapsed().as_secs_f64() / (n * batch) as f64;
    eprintln!(
        "{name} b{batch} 1 thread: int8 {:.2} us/ex, fp32 {:.2} us/ex, ratio {:.2}",
        ti * 1e6,
        tf * 1e6,
        ti / tf
    );
}
