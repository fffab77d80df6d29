// Max / average pooling, valid padding, one output element per invocation.
// P.a = (H, W, C, Ho); P.b = (Wo, kh, kw, sh); P.c = (sw, is_max, _, total).

@compute @workgroup_size(64)
fn pool(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= P.c.w) { return; }
    let win = window();
    let is_max = P.c.y != 0u;
    let c = i % win.C;
    let pix = i / win.C;
    let ox = pix % win.Wo;
    let oy = (pix / win.Wo) % win.Ho;
    let n = pix / (win.Wo * win.Ho);
    var m = -3.4028235e38;
    var s = 0.0;
    for (var ky = 0u; ky < win.kh; ky++) {
        for (var kx = 0u; kx < win.kw; kx++) {
            let v = src0[((n * win.H + oy * win.sh + ky) * win.W + ox * win.sw + kx) * win.C + c];
            m = max(m, v);
            s += v;
        }
    }
    if (is_max) {
        dst[i] = m;
    } else {
        dst[i] = s / f32(win.kh * win.kw);
    }
}
