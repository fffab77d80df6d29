// Row-wise reductions, one row per invocation (rows here are short: <= a few hundred).
// P.a = (rows, n, eps bits, _).

@compute @workgroup_size(64)
fn softmax(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = linear_id(gid, nwg);
    if (r >= P.a.x) { return; }
    let n = P.a.y;
    let base = r * n;
    var m = src0[base];
    for (var j = 1u; j < n; j++) {
        m = max(m, src0[base + j]);
    }
    var z = 0.0;
    for (var j = 0u; j < n; j++) {
        let e = exp(src0[base + j] - m);
        dst[base + j] = e;
        z += e;
    }
    let inv = 1.0 / z;
    for (var j = 0u; j < n; j++) {
        dst[base + j] *= inv;
    }
}

// Layer norm with affine gamma (src1), beta (src2).
@compute @workgroup_size(64)
fn layer_norm(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = linear_id(gid, nwg);
    if (r >= P.a.x) { return; }
    let n = P.a.y;
    let eps = bitcast<f32>(P.a.z);
    let base = r * n;
    var s = 0.0;
    for (var j = 0u; j < n; j++) {
        s += src0[base + j];
    }
    let mean = s / f32(n);
    var q = 0.0;
    for (var j = 0u; j < n; j++) {
        let d = src0[base + j] - mean;
        q += d * d;
    }
    let inv = inverseSqrt(q / f32(n) + eps);
    for (var j = 0u; j < n; j++) {
        dst[base + j] = (src0[base + j] - mean) * inv * src1[j] + src2[j];
    }
}

// Mean over `rows` rows of C channels, per example: one (example, channel) per invocation.
// P.a = (batch * C, rows, C, _).
@compute @workgroup_size(64)
fn global_avg_pool(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= P.a.x) { return; }
    let rows = P.a.y;
    let C = P.a.z;
    let n = i / C;
    let c = i % C;
    var s = 0.0;
    for (var r = 0u; r < rows; r++) {
        s += src0[(n * rows + r) * C + c];
    }
    dst[i] = s / f32(rows);
}
