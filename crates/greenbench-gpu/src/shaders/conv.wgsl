// Convolutions over NHWC. `im2col` lays out patches for the tiled matmul (ungrouped
// convolutions); `conv_direct` computes one output element per invocation for grouped and
// depthwise convolutions, which are memory-bound: consecutive invocations touch consecutive
// channels, so loads and stores coalesce.
//
// Geometry: P.a = (H, W, Cin, Ho); P.b = (Wo, kh, kw, sh); P.c = (sw, pad_top, pad_left, total);
// P.d = (Cout, groups, flags: 1 bias, 2 relu, _). `total` = invocations that do work.

@compute @workgroup_size(64)
fn im2col(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= P.c.w) { return; }
    let win = window();
    let pt = P.c.y; let pl = P.c.z;
    let kk = win.kh * win.kw * win.C;
    let r = i / kk;
    let t = i % kk;
    let ci = t % win.C;
    let tap = t / win.C;
    let kx = tap % win.kw;
    let ky = tap / win.kw;
    let n = r / (win.Ho * win.Wo);
    let rem = r % (win.Ho * win.Wo);
    let oy = rem / win.Wo;
    let ox = rem % win.Wo;
    let iy = i32(oy * win.sh + ky) - i32(pt);
    let ix = i32(ox * win.sw + kx) - i32(pl);
    var v = 0.0;
    if (iy >= 0 && ix >= 0 && iy < i32(win.H) && ix < i32(win.W)) {
        v = src0[((n * win.H + u32(iy)) * win.W + u32(ix)) * win.C + ci];
    }
    dst[i] = v;
}

@compute @workgroup_size(64)
fn conv_direct(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= P.c.w) { return; }
    let win = window();
    let pt = P.c.y; let pl = P.c.z;
    let Cout = P.d.x; let groups = P.d.y; let flags = P.d.z;
    let cin_g = win.C / groups;
    let cout_g = Cout / groups;
    let co = i % Cout;
    let pix = i / Cout;
    let ox = pix % win.Wo;
    let oy = (pix / win.Wo) % win.Ho;
    let n = pix / (win.Wo * win.Ho);
    let g = co / cout_g;
    var acc = 0.0;
    if ((flags & 1u) != 0u) {
        acc = src2[co];
    }
    for (var ky = 0u; ky < win.kh; ky++) {
        let iy = i32(oy * win.sh + ky) - i32(pt);
        if (iy < 0 || iy >= i32(win.H)) {
            continue;
        }
        for (var kx = 0u; kx < win.kw; kx++) {
            let ix = i32(ox * win.sw + kx) - i32(pl);
            if (ix < 0 || ix >= i32(win.W)) {
                continue;
            }
            let base = ((n * win.H + u32(iy)) * win.W + u32(ix)) * win.C + g * cin_g;
            let wbase = (ky * win.kw + kx) * cin_g * Cout + co;
            for (var c = 0u; c < cin_g; c++) {
                acc = fma(src0[base + c], src1[wbase + c * Cout], acc);
            }
        }
    }
    if ((flags & 2u) != 0u) {
        acc = max(acc, 0.0);
    }
    dst[i] = acc;
}
