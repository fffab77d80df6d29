// Elementwise kernels: memory-bound, one element per invocation, coalesced.
// P.a.x = element count for all; further slots per entry point.

@compute @workgroup_size(64)
fn relu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= P.a.x) { return; }
    dst[i] = max(src0[i], 0.0);
}

// GELU, tanh approximation. tanh(u) = 1 - 2 / (exp(2u) + 1), with u clamped so exp stays finite.
@compute @workgroup_size(64)
fn gelu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= P.a.x) { return; }
    let x = src0[i];
    let u = clamp(0.7978845608028654 * (x + 0.044715 * x * x * x), -15.0, 15.0);
    let t = 1.0 - 2.0 / (exp(2.0 * u) + 1.0);
    dst[i] = 0.5 * x * (1.0 + t);
}

@compute @workgroup_size(64)
fn add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= P.a.x) { return; }
    dst[i] = src0[i] + src1[i];
}

// Unfolded batch norm: x * scale[c] + shift[c]; P.a.y = C.
@compute @workgroup_size(64)
fn scale_shift(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= P.a.x) { return; }
    let c = i % P.a.y;
    dst[i] = src0[i] * src1[c] + src2[c];
}

// Token embedding (+ positions): src0 token ids, src1 table [vocab, dim], src2 positions [S, dim].
// P.a = (total, seq, dim, has_positions).
@compute @workgroup_size(64)
fn embedding(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= P.a.x) { return; }
    let dim = P.a.z;
    let row = i / dim;
    let d = i % dim;
    let tok = u32(src0[row]);
    var v = src1[tok * dim + d];
    if (P.a.w != 0u) {
        v += src2[(row % P.a.y) * dim + d];
    }
    dst[i] = v;
}
