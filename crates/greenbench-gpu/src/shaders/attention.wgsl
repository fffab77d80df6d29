// Multi-head self-attention core over fused QKV [batch * S, 3 * H * D] -> [batch * S, H * D]:
// one (example, head, query row) per invocation; scores in two passes (max, then exp-sum and
// the weighted sum of V), so nothing of size S x S is stored. D <= 64.
// P.a = (batch * H * S, S, H, D); P.b.x = scale bits (1 / sqrt(D)); P.b.y = 1 for causal (row r
// attends to keys 0..=r only); P.b.z = 1 when src1 holds a key bias, [batch * S] values added to
// each example's scaled scores at each key (a padding mask).

fn key_bias(k: u32) -> f32 {
    if (P.b.z != 0u) {
        return src1[k];
    }
    return 0.0;
}

@compute @workgroup_size(64)
fn attention(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= P.a.x) { return; }
    let S = P.a.y;
    let H = P.a.z;
    let D = P.a.w;
    let scale = bitcast<f32>(P.b.x);
    let r = i % S;
    let h = (i / S) % H;
    let n = i / (S * H);
    let stride = 3u * H * D;
    let q = (n * S + r) * stride + h * D;
    let keys = select(S, r + 1u, P.b.y != 0u);
    var m = -3.4028235e38;
    for (var c = 0u; c < keys; c++) {
        let k = (n * S + c) * stride + H * D + h * D;
        var s = 0.0;
        for (var j = 0u; j < D; j++) {
            s = fma(src0[q + j], src0[k + j], s);
        }
        m = max(m, s * scale + key_bias(n * S + c));
    }
    var acc: array<f32, 64>;
    for (var j = 0u; j < D; j++) {
        acc[j] = 0.0;
    }
    var z = 0.0;
    for (var c = 0u; c < keys; c++) {
        let k = (n * S + c) * stride + H * D + h * D;
        let v = (n * S + c) * stride + 2u * H * D + h * D;
        var s = 0.0;
        for (var j = 0u; j < D; j++) {
            s = fma(src0[q + j], src0[k + j], s);
        }
        let e = exp(s * scale + key_bias(n * S + c) - m);
        z += e;
        for (var j = 0u; j < D; j++) {
            acc[j] = fma(e, src0[v + j], acc[j]);
        }
    }
    let out = (n * S + r) * H * D + h * D;
    for (var j = 0u; j < D; j++) {
        dst[out + j] = acc[j] / z;
    }
}
