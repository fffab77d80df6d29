//! Price-tag labels over the committed result files: one per model and machine, ranks only
//! among models of one task on one machine, every figure from the cell it names.

use greenbench_harness::record::ResultFile;
use greenbench_results::Loaded;
use greenbench_results::label::{Label, labels};
use std::path::{Path, PathBuf};

fn results(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../results")
        .join(rel)
}

fn loaded(p: &Path) -> Loaded {
    Loaded {
        path: p.to_path_buf(),
        file: ResultFile::load(p).unwrap(),
    }
}

fn find<'a>(ls: &'a [Label], model: &str, cpu: &str) -> &'a Label {
    ls.iter()
        .find(|l| l.model == model && l.host.contains(cpu))
        .unwrap_or_else(|| panic!("no label for {model} on {cpu}"))
}

#[test]
fn one_label_per_model_and_machine_ranked_within_task_and_machine() {
    // The Xeon baseline (7 zoo models) and an EPYC int8 run (7 zoo models), both host "vm".
    let files = vec![
        loaded(&results("baseline/vm-full.json")),
        loaded(&results("int8/greenbench-cpu-quick-fp32-int8.json")),
    ];
    let ls = labels(&files);
    assert_eq!(
        ls.len(),
        14,
        "7 models x 2 machines (one host name, two CPUs)"
    );
    for cpu in ["Xeon", "EPYC"] {
        let lenet = find(&ls, "lenet5", cpu);
        let mlp = find(&ls, "mlp", cpu);
        // lenet5 and mlp share a task: ranked among the two of them on this machine only.
        assert_eq!(lenet.score.map(|s| s.1), Some(2), "{cpu}");
        assert_eq!(mlp.score.map(|s| s.1), Some(2), "{cpu}");
        let mut scores = [lenet.score.unwrap().0, mlp.score.unwrap().0];
        scores.sort();
        assert_eq!(scores, [1, 5], "least is 1, most is 5");
        // Alone in their tasks: not ranked, and the label says why.
        let resnet = find(&ls, "resnet8", cpu);
        assert_eq!(resnet.score, None);
        assert!(resnet.svg.contains("not ranked"), "{}", resnet.svg);
    }
    for l in &ls {
        assert!(
            l.svg
                .starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\"")
        );
        assert!(l.svg.contains("<title>greenbench price tag"));
        // Every file's energy is the labelled estimate: the mark is on every label.
        assert!(l.svg.contains("(est.)"), "{}", l.model);
        assert!(l.svg.contains("1 = least energy per example"));
    }
}

#[test]
fn a_machine_s_ranks_ignore_the_other_machines() {
    let base = loaded(&results("baseline/vm-full.json"));
    let other = loaded(&results("int8/greenbench-cpu-quick-fp32-int8.json"));
    let before = labels(&[base.clone(), other.clone()]);
    // Make the EPYC's lenet5 a hundred times cheaper: the Xeon's ranks must not move.
    let mut cheap = other.clone();
    for c in cheap.file.cells.iter_mut().filter(|c| c.model == "lenet5") {
        for j in [
            &mut c.energy_per_example_j,
            &mut c.energy_gross_per_example_j,
            &mut c.energy_net_per_example_j,
        ] {
            *j = j.map(|j| j / 100.0);
        }
    }
    let after = labels(&[base, cheap]);
    for model in ["lenet5", "mlp"] {
        assert_eq!(
            find(&before, model, "Xeon").score,
            find(&after, model, "Xeon").score
        );
    }
    assert_eq!(find(&after, "lenet5", "EPYC").score.map(|s| s.0), Some(1));
}

#[test]
fn a_label_shows_its_cell_and_the_training_runs() {
    let files = vec![
        loaded(&results("baseline/vm-full.json")),
        loaded(&results("training/lenet5-digits-sweep.json")),
    ];
    let ls = labels(&files);
    let l = find(&ls, "lenet5", "Xeon");
    // The cheapest inference cell on the machine, by estimated energy per example.
    let best = files[0]
        .file
        .cells
        .iter()
        .filter(|c| c.model == "lenet5" && c.energy_per_example_j.is_some())
        .min_by(|a, b| {
            a.energy_per_example_j
                .partial_cmp(&b.energy_per_example_j)
                .unwrap()
        })
        .unwrap();
    assert!(
        l.svg.contains(&format!("batch {}", best.batch)) && l.svg.contains(&best.backend),
        "{}",
        l.svg
    );
    assert!(l.svg.contains(&greenbench_results::text::joules(
        best.energy_per_example_j.unwrap()
    )));
    // The sweep: the best of its three runs, and its E·D·H.
    assert!(
        l.svg
            .contains("test accuracy: 97.77 % (best of 3 training run(s)")
    );
    assert!(l.svg.contains("training E·D·H: 3 run(s)"));
    assert!(l.svg.contains("vm-full.json") && l.svg.contains("lenet5-digits-sweep.json"));
}
