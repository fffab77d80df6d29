// Max / average pooling, one output element per invocation; windows clipped to the image
// (padding never wins a max, adds nothing to a sum).
// P.a = (H, W, C, Ho); P.b = (Wo, kh, kw, sh); P.c = (sw, is_max, count_include_pad, total);
// P.d = (pad_top, pad_left, pad_bottom, pad_right).

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
    // Window in unpadded coordinates, possibly starting above / left of the image.
    let sy = i32(oy * win.sh) - i32(P.d.x);
    let sx = i32(ox * win.sw) - i32(P.d.y);
    let y0 = u32(max(sy, 0));
    let x0 = u32(max(sx, 0));
    let y1 = u32(clamp(sy + i32(win.kh), 0, i32(win.H)));
    let x1 = u32(clamp(sx + i32(win.kw), 0, i32(win.W)));
    var m = -3.4028235e38;
    var s = 0.0;
    for (var iy = y0; iy < y1; iy++) {
        for (var ix = x0; ix < x1; ix++) {
            let v = src0[((n * win.H + iy) * win.W + ix) * win.C + c];
            m = max(m, v);
            s += v;
        }
    }
    if (is_max) {
        dst[i] = m;
    } else {
        var count = f32((y1 - y0) * (x1 - x0));
        if (P.c.z != 0u) {
            // The window clipped to the padded image.
            let ny = min(sy + i32(win.kh), i32(win.H + P.d.z)) - max(sy, -i32(P.d.x));
            let nx = min(sx + i32(win.kw), i32(win.W + P.d.w)) - max(sx, -i32(P.d.y));
            count = f32(max(ny, 0) * max(nx, 0));
        }
        dst[i] = s / count;
    }
}
