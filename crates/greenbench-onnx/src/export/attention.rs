//! The attention core exported as torch.onnx writes multi-head attention (so greenbench
//! imports it back): per-head reshapes and transposes, two products, the scale, the masks and
//! a softmax.

use super::{Builder, attr_int, attr_ints};

impl Builder {
    /// Attention over the fused QKV value `src` (`[N, S, 3 h d]`) into `[N, S, h d]`, named
    /// `nm`; `key_bias` names a `[N, S]` value added to the scores at each key.
    pub(super) fn attention(
        &mut self,
        nm: &str,
        src: &str,
        (n, h, d): (usize, usize, usize),
        causal: bool,
        key_bias: Option<&str>,
    ) -> String {
        // As torch.onnx writes multi-head attention (so greenbench imports it back):
        // Q, K, V sliced from the fused projection, each reshaped to [N, S, h, d] and
        // transposed to [N, h, S, d] (K to [N, h, d, S]).
        let hd = (h * d) as i64;
        let heads = self.init_i64(&format!("{nm}_heads"), &[4], &[0, 0, h as i64, d as i64]);
        let axis = self.init_i64(&format!("{nm}_axis"), &[1], &[2]);
        let mut qkv = Vec::new();
        for (k, part) in ["q", "k", "v"].iter().enumerate() {
            let st = self.init_i64(&format!("{nm}_{part}_start"), &[1], &[k as i64 * hd]);
            let en = self.init_i64(&format!("{nm}_{part}_end"), &[1], &[(k as i64 + 1) * hd]);
            let sl = self.node(
                "Slice",
                &format!("{nm}_{part}"),
                &[src, &st, &en, &axis],
                &[],
            );
            let r = self.node(
                "Reshape",
                &format!("{nm}_{part}_split"),
                &[&sl, &heads],
                &[],
            );
            let perm: &[i64] = if k == 1 { &[0, 2, 3, 1] } else { &[0, 2, 1, 3] };
            qkv.push(self.node(
                "Transpose",
                &format!("{nm}_{part}_heads"),
                &[&r],
                &[attr_ints("perm", perm)],
            ));
        }
        let kt = qkv[1].clone();
        let s = self.node("MatMul", &format!("{nm}_scores"), &[&qkv[0], &kt], &[]);
        let scale = self.scalar(&format!("{nm}_scale"), 1.0 / (d as f32).sqrt());
        let mut ss = self.node("Mul", &format!("{nm}_scaled"), &[&s, &scale], &[]);
        if causal {
            // The additive causal mask: 0 on and below the diagonal, f32::MIN above
            // (x + MIN rounds to MIN for any score below 1e31; exp then gives 0).
            let mask: Vec<f32> = (0..n * n)
                .map(|i| if i % n > i / n { f32::MIN } else { 0.0 })
                .collect();
            let m = self.init_f32(&format!("{nm}_causal"), &[n, n], &mask);
            ss = self.node("Add", &format!("{nm}_masked"), &[&ss, &m], &[]);
        }
        if let Some(bias) = key_bias {
            // The key bias as [N, 1, 1, S] (Hugging Face's `mask[:, None, None, :]`), added
            // to every head's and row's scores.
            let flat = self.init_i64(&format!("{nm}_bias_shape"), &[2], &[0, n as i64]);
            let kb = self.node("Reshape", &format!("{nm}_bias_flat"), &[bias, &flat], &[]);
            let axes = self.init_i64(&format!("{nm}_bias_axes"), &[2], &[1, 2]);
            let kb = self.node("Unsqueeze", &format!("{nm}_bias"), &[&kb, &axes], &[]);
            ss = self.node("Add", &format!("{nm}_biased"), &[&ss, &kb], &[]);
        }
        let p = self.node(
            "Softmax",
            &format!("{nm}_probs"),
            &[&ss],
            &[attr_int("axis", -1)],
        );
        let o = self.node("MatMul", &format!("{nm}_ctx"), &[&p, &qkv[2]], &[]);
        let ot = self.node(
            "Transpose",
            &format!("{nm}_merge"),
            &[&o],
            &[attr_ints("perm", &[0, 2, 1, 3])],
        );
        let shape3 = self.init_i64(&format!("{nm}_shape3"), &[3], &[0, 0, (h * d) as i64]);
        self.node("Reshape", nm, &[&ot, &shape3], &[])
    }
}
