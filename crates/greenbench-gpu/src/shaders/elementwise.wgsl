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

// tanh(u) = 1 - 2 / (exp(2u) + 1), u clamped so exp stays finite (as gelu).
fn tanh_exp(x: f32) -> f32 {
    let u = clamp(x, -15.0, 15.0);
    return 1.0 - 2.0 / (exp(2.0 * u) + 1.0);
}

// erf, Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7).
fn erf_as(x: f32) -> f32 {
    let a = abs(x);
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let r = 1.0 - poly * exp(-a * a);
    return select(-r, r, x >= 0.0);
}

// x^p as ONNX's Pow: WGSL's pow is undefined for x < 0, so a negative base takes |x|^p with
// the sign of an odd integer power (NaN for a non-integer power, as in f32 powf).
fn pow_onnx(x: f32, p: f32) -> f32 {
    if (x >= 0.0) { return pow(x, p); }
    if (p != floor(p)) { let z = x - x; return z / z; }
    let m = pow(-x, p);
    let odd = (i32(p) % 2) != 0;
    return select(m, -m, odd);
}

// The elementwise activations of greenbench_core::graph::Unary. P.a = (total, code, p0, p1)
// with p0, p1 f32 bits; codes as Unary::code.
@compute @workgroup_size(64)
fn unary(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= P.a.x) { return; }
    let x = src0[i];
    let p0 = bitcast<f32>(P.a.z);
    let p1 = bitcast<f32>(P.a.w);
    var y = x;
    switch P.a.y {
        case 0u: { y = 0.5 + 0.5 * tanh_exp(0.5 * x); }
        case 1u: { y = clamp(p0 * x + p1, 0.0, 1.0); }
        case 2u: { y = x * clamp(x / 6.0 + 0.5, 0.0, 1.0); }
        case 3u: { y = min(max(x, p0), p1); }
        case 4u: { y = tanh_exp(x); }
        case 5u: { y = select(p0 * x, x, x >= 0.0); }
        case 6u: { y = 0.5 * x * (1.0 + erf_as(x * 0.70710678118654752)); }
        // MathFn (ONNX's math operators)
        case 7u: { y = sqrt(x); }
        case 8u: { y = 1.0 / x; }
        case 9u: { y = -x; }
        case 10u: { y = exp(x); }
        case 11u: { y = log(x); }
        case 12u: { y = abs(x); }
        case 13u: { y = sign(x); }
        case 14u: { y = erf_as(x); }
        // round to the nearest bfloat16, ties to even (greenbench_core::bf16::round)
        case 16u: { y = round_bf16(x); }
        default: { y = pow_onnx(x, p0); }
    }
    dst[i] = y;
}

// x rounded to the nearest bfloat16 (ties to even), as f32; NaN stays NaN (quiet).
fn round_bf16(x: f32) -> f32 {
    let b = bitcast<u32>(x);
    if (x != x) { return bitcast<f32>((b | 0x00400000u) & 0xffff0000u); }
    let lsb = (b >> 16u) & 1u;
    return bitcast<f32>((b + 0x7fffu + lsb) & 0xffff0000u);
}

// dst[n, k] = src0[n, k] * src1[n, k % b_len]. P.a = (total, a_len, b_len).
@compute @workgroup_size(64)
fn mul_bcast(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= P.a.x) { return; }
    let n = i / P.a.y;
    let k = i % P.a.y;
    dst[i] = src0[i] * src1[n * P.a.z + k % P.a.z];
}

// One source of a concatenation into its columns of dst. P.a = (part total, part, row, offset).
@compute @workgroup_size(64)
fn concat_part(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= P.a.x) { return; }
    dst[(i / P.a.y) * P.a.z + P.a.w + i % P.a.y] = src0[i];
}

// Channel shuffle of rows of C = groups x k: dst[j * groups + g] = src[g * k + j].
// P.a = (total, C, groups).
@compute @workgroup_size(64)
fn channel_shuffle(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= P.a.x) { return; }
    let c = P.a.y;
    let groups = P.a.z;
    let p = i % c;
    let row = i - p;
    let j = p / groups;
    let g = p % groups;
    dst[i] = src0[row + g * (c / groups) + j];
}

// A slice: per outer index, `part` values from `offset` of each `row` of src.
// P.a = (total, part, row, offset).
@compute @workgroup_size(64)
fn slice_part(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= P.a.x) { return; }
    dst[i] = src0[(i / P.a.y) * P.a.z + P.a.w + i % P.a.y];
}

// A strided map (greenbench_core::strided::Strided): dst in row-major order over `rank` axes;
// src2 holds, as u32 bits, the axes' lengths, then src0's strides, then src1's. P.a = (total, rank,
// op): op 0..3 = src0 + - * / src1 (numpy broadcasting), 4 = a copy of src0 (a transpose).
@compute @workgroup_size(64)
fn strided(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= P.a.x) { return; }
    let r = P.a.y;
    var rest = i;
    var pa = 0u;
    var pb = 0u;
    for (var k = 0u; k < r; k++) {
        let ax = r - 1u - k;
        let d = bitcast<u32>(src2[ax]);
        let ix = rest % d;
        rest = rest / d;
        pa += ix * bitcast<u32>(src2[r + ax]);
        pb += ix * bitcast<u32>(src2[2u * r + ax]);
    }
    let a = src0[pa];
    var y = a;
    switch P.a.z {
        case 0u: { y = a + src1[pb]; }
        case 1u: { y = a - src1[pb]; }
        case 2u: { y = a * src1[pb]; }
        case 3u: { y = a / src1[pb]; }
        default: {}
    }
    dst[i] = y;
}
