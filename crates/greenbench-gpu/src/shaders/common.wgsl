// Shared by every kernel family: one bind-group layout for all pipelines.
// Params: 16 u32 slots (f32 values are passed as bits); their meaning is per entry point.
struct Params {
    a: vec4<u32>,
    b: vec4<u32>,
    c: vec4<u32>,
    d: vec4<u32>,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> src0: array<f32>;
@group(0) @binding(2) var<storage, read> src1: array<f32>;
@group(0) @binding(3) var<storage, read> src2: array<f32>;
@group(0) @binding(4) var<storage, read_write> dst: array<f32>;

// Threads per workgroup of the 1-D kernels.
const WG: u32 = 64u;

// 1-D invocation index over a 2-D grid (a grid dimension holds at most 65535 workgroups).
fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.y * nwg.x * WG + gid.x;
}

// The window geometry convolutions and pooling share: P.a = (H, W, C, Ho), P.b = (Wo, kh,
// kw, sh), P.c.x = sw (input height, width, channels; output height, width; kernel; strides).
struct Window {
    H: u32, W: u32, C: u32, Ho: u32,
    Wo: u32, kh: u32, kw: u32, sh: u32,
    sw: u32,
}

fn window() -> Window {
    return Window(P.a.x, P.a.y, P.a.z, P.a.w, P.b.x, P.b.y, P.b.z, P.b.w, P.c.x);
}
