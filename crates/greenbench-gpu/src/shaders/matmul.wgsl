// C[M, N] = A[M, K] . B[K, N] (+ bias[N]) (then ReLU): dense layers, 1x1 and im2col'd
// convolutions, the peak. Tiled in workgroup memory: a TS x TS workgroup computes a
// (4 TS) x (4 TS) block of C, each invocation a 4x4 sub-block, stepping K by 16. TS is set
// from the adapter's limits when the pipeline is built (16 where 256 invocations and 8 KiB of
// workgroup memory are allowed, else 8); the line below is replaced then.
// P.a = (M, N, K, flags: 1 bias, 2 relu); P.b = (lda, ldb, ldc, a_off); P.c = (b_off, c_off, bias_off,
// mats). Batched products (the MatMul of two activations): the grid's y axis holds the M tiles of
// every product t in turn, example t / mats, matrix t % mats; A's matrix starts at
// a_off + example * P.d.x + matrix * P.d.y, B's at b_off + example * P.d.z + matrix * P.d.w, C's at
// c_off + t * M * N (contiguous). mats 0 (dense layers) is one product.

const TS: u32 = 16u;
const BM: u32 = 4u * TS;
const BN: u32 = 4u * TS;
const BK: u32 = 16u;
const THREADS: u32 = TS * TS;
// Elements each invocation loads per tile and matrix.
const LOADS: u32 = BK * BM / THREADS;

var<workgroup> As: array<f32, BK * BM>; // [BK][BM]
var<workgroup> Bs: array<f32, BK * BN>; // [BK][BN]

@compute @workgroup_size(TS, TS)
fn matmul(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let M = P.a.x;
    let N = P.a.y;
    let K = P.a.z;
    let flags = P.a.w;
    let lda = P.b.x;
    let ldb = P.b.y;
    let ldc = P.b.z;
    let bias_off = P.c.z;
    let mats = max(P.c.w, 1u);
    let mtiles = (M + BM - 1u) / BM;
    let t = wid.y / mtiles;
    let ex = t / mats;
    let mt = t % mats;
    let a_off = P.b.w + ex * P.d.x + mt * P.d.y;
    let b_off = P.c.x + ex * P.d.z + mt * P.d.w;
    let c_off = P.c.y + t * M * N;
    let row0 = (wid.y % mtiles) * BM;
    let col0 = wid.x * BN;
    let tid = lid.y * TS + lid.x;
    var acc: array<f32, 16>;
    for (var i = 0u; i < 16u; i++) {
        acc[i] = 0.0;
    }
    for (var k0 = 0u; k0 < K; k0 += BK) {
        for (var i = 0u; i < LOADS; i++) {
            let idx = tid + i * THREADS;
            // A tile: consecutive invocations read consecutive k of one row.
            let m = idx / BK;
            let ka = idx % BK;
            let gm = row0 + m;
            let gka = k0 + ka;
            var v = 0.0;
            if (gm < M && gka < K) {
                v = src0[a_off + gm * lda + gka];
            }
            As[ka * BM + m] = v;
            // B tile: consecutive invocations read consecutive n of one row.
            let kb = idx / BN;
            let n = idx % BN;
            let gkb = k0 + kb;
            let gn = col0 + n;
            var w = 0.0;
            if (gkb < K && gn < N) {
                w = src1[b_off + gkb * ldb + gn];
            }
            Bs[kb * BN + n] = w;
        }
        workgroupBarrier();
        for (var k = 0u; k < BK; k++) {
            var a: array<f32, 4>;
            var b: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                a[i] = As[k * BM + lid.y * 4u + i];
                b[i] = Bs[k * BN + lid.x * 4u + i];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i * 4u + j] = fma(a[i], b[j], acc[i * 4u + j]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let gm = row0 + lid.y * 4u + i;
        for (var j = 0u; j < 4u; j++) {
            let gn = col0 + lid.x * 4u + j;
            if (gm < M && gn < N) {
                var v = acc[i * 4u + j];
                if ((flags & 1u) != 0u) {
                    v += src2[bias_off + gn];
                }
                if ((flags & 2u) != 0u) {
                    v = max(v, 0.0);
                }
                dst[c_off + gm * ldc + gn] = v;
            }
        }
    }
}
