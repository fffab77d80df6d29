// Max / average pooling, valid padding, one output element per invocation.
// P.a = (H, W, C, Ho); P.b = (Wo, kh, kw, sh); P.c = (sw, is_max, _, total).

@compute @workgroup_size(64)
fn pool(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= P.c.w) {
        return;
    }
    let H = P.a.x; let W = P.a.y; let C = P.a.z; let Ho = P.a.w;
    let Wo = P.b.x; let kh = P.b.y; let kw = P.b.z; let sh = P.b.w;
    let sw = P.c.x; let is_max = P.c.y != 0u;
    let c = i % C;
    let pix = i / C;
    let ox = pix % Wo;
    let oy = (pix / Wo) % Ho;
    let n = pix / (Wo * Ho);
    var m = -3.4028235e38;
    var s = 0.0;
    for (var ky = 0u; ky < kh; ky++) {
        for (var kx = 0u; kx < kw; kx++) {
            let v = src0[((n * H + oy * sh + ky) * W + ox * sw + kx) * C + c];
            m = max(m, v);
            s += v;
        }
    }
    if (is_max) {
        dst[i] = m;
    } else {
        dst[i] = s / f32(kh * kw);
    }
}
