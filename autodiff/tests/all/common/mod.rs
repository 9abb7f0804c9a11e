//! The attention layers that several test files compose, written once.

use autodiff::{Result, Tape, Var};

/// Causal self-attention of `x: [B, T, d]` with separate projections `w = [W_q, W_k, W_v, W_o]`,
/// each `[d, d]`, no biases, `heads` heads (scale `1 / sqrt(d / heads)`):
/// `attention(x W_q^T, x W_k^T, x W_v^T) W_o^T`.
pub fn self_attention(tape: &mut Tape<f64>, x: Var, w: &[Var], heads: usize) -> Result<Var> {
    let [q, k, v] = [w[0], w[1], w[2]].map(|wi| tape.matmul_nt(x, wi));
    let mixed = tape.try_attention(q, k, v, heads, true)?;
    tape.try_linear(mixed, w[3], None)
}

/// `nn.MultiheadAttention(d, heads, batch_first=True)` as self-attention with a causal mask:
/// `p = [in_proj_weight [3d, d], in_proj_bias [3d], out_proj.weight [d, d], out_proj.bias [d]]`.
/// One projection gives `[B, T, 3d]`, cut into q, k and v along its last axis in that order.
pub fn multihead_attention(tape: &mut Tape<f64>, x: Var, p: &[Var], heads: usize) -> Result<Var> {
    let d = tape.shape(x)[2];
    let qkv = tape.try_linear(x, p[0], Some(p[1]))?;
    let q = tape.try_slice_axis(qkv, 2, 0..d)?;
    let k = tape.try_slice_axis(qkv, 2, d..2 * d)?;
    let v = tape.try_slice_axis(qkv, 2, 2 * d..3 * d)?;
    let mixed = tape.try_attention(q, k, v, heads, true)?;
    tape.try_linear(mixed, p[2], Some(p[3]))
}
