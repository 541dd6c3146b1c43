"""The Triton kernel behind fp8_attention.stored_attention (imported only where it runs: Triton is
loaded at this module's import). One program: BLOCK_M queries of one (batch, head) against both key
sets, FlashAttention-style online softmax in base 2. ``DOT_F32``: widen bf16/fp16 operands to fp32
before each dot (Triton 3.9's CPU interpreter multiplies bf16 operands wrongly; the products are
the same, the GPU accumulates in fp32 too)."""

import triton
import triton.language as tl


@triton.jit
def _part(
    acc,
    m_i,
    l_i,
    q,
    q_scale,
    k_ptr,
    ks_ptr,
    v_ptr,
    vs_ptr,
    s_kn,
    s_kd,
    s_ksn,
    s_vn,
    s_vd,
    s_vsn,
    n_keys,
    qk_scale,
    K_SCALED: tl.constexpr,
    V_SCALED: tl.constexpr,
    FP8_QK: tl.constexpr,
    BLOCK_N: tl.constexpr,
    D: tl.constexpr,
    DOT_F32: tl.constexpr,
):
    offs_d = tl.arange(0, D)
    for start in range(0, n_keys, BLOCK_N):
        offs_n = start + tl.arange(0, BLOCK_N)
        live = offs_n < n_keys
        k = tl.load(k_ptr + offs_n[:, None] * s_kn + offs_d[None, :] * s_kd, mask=live[:, None], other=0.0)
        col = tl.full([BLOCK_N], 1.0, tl.float32)
        if K_SCALED:
            col = tl.load(ks_ptr + offs_n * s_ksn, mask=live, other=0.0)
        if FP8_QK:
            if not K_SCALED:  # a model-dtype key set: quantise its rows here
                kf = k.to(tl.float32)
                col = tl.maximum(tl.max(tl.abs(kf), axis=1), 1e-12) / 448.0
                k = (kf / col[:, None]).to(tl.float8e4nv)
            s = tl.dot(q, tl.trans(k))
        else:
            k = k.to(q.dtype)
            if DOT_F32:
                s = tl.dot(q.to(tl.float32), tl.trans(k.to(tl.float32)))
            else:
                s = tl.dot(q, tl.trans(k))
        s = s * (q_scale[:, None] * col[None, :] * qk_scale)
        s = tl.where(live[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, axis=1)
        v = tl.load(v_ptr + offs_n[:, None] * s_vn + offs_d[None, :] * s_vd, mask=live[:, None], other=0.0)
        if V_SCALED:
            p = p * tl.load(vs_ptr + offs_n * s_vsn, mask=live, other=0.0)[None, :]
            v = v.to(tl.bfloat16)
        p = p.to(v.dtype)
        if DOT_F32:
            acc = acc * alpha[:, None] + tl.dot(p.to(tl.float32), v.to(tl.float32))
        else:
            acc = acc * alpha[:, None] + tl.dot(p, v)
        m_i = m_new
    return acc, m_i, l_i


@triton.jit
def attention_kernel(
    q_ptr,
    o_ptr,
    s_qb,
    s_qm,
    s_qh,
    s_ob,
    s_om,
    s_oh,
    k1,
    k1s,
    v1,
    v1s,
    s1_kb,
    s1_kn,
    s1_kh,
    s1_ksb,
    s1_ksn,
    s1_ksh,
    s1_vb,
    s1_vn,
    s1_vh,
    s1_vsb,
    s1_vsn,
    s1_vsh,
    n1,
    k2,
    k2s,
    v2,
    v2s,
    s2_kb,
    s2_kn,
    s2_kh,
    s2_ksb,
    s2_ksn,
    s2_ksh,
    s2_vb,
    s2_vn,
    s2_vh,
    s2_vsb,
    s2_vsn,
    s2_vsh,
    n2,
    n_q,
    heads,
    qk_scale,
    K1_SCALED: tl.constexpr,
    V1_SCALED: tl.constexpr,
    K2_SCALED: tl.constexpr,
    V2_SCALED: tl.constexpr,
    FP8_QK: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    D: tl.constexpr,
    DOT_F32: tl.constexpr,
):
    pid_m, pid_bh = tl.program_id(0), tl.program_id(1)
    b, h = pid_bh // heads, pid_bh % heads
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, D)
    rows = offs_m < n_q
    q = tl.load(q_ptr + b * s_qb + h * s_qh + offs_m[:, None] * s_qm + offs_d[None, :], mask=rows[:, None], other=0.0)
    q_scale = tl.full([BLOCK_M], 1.0, tl.float32)
    if FP8_QK:
        qf = q.to(tl.float32)
        q_scale = tl.maximum(tl.max(tl.abs(qf), axis=1), 1e-12) / 448.0
        q = (qf / q_scale[:, None]).to(tl.float8e4nv)
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, D], tl.float32)
    acc, m_i, l_i = _part(
        acc,
        m_i,
        l_i,
        q,
        q_scale,
        k1 + b * s1_kb + h * s1_kh,
        k1s + b * s1_ksb + h * s1_ksh,
        v1 + b * s1_vb + h * s1_vh,
        v1s + b * s1_vsb + h * s1_vsh,
        s1_kn,
        1,
        s1_ksn,
        s1_vn,
        1,
        s1_vsn,
        n1,
        qk_scale,
        K1_SCALED,
        V1_SCALED,
        FP8_QK,
        BLOCK_N,
        D,
        DOT_F32,
    )
    acc, m_i, l_i = _part(
        acc,
        m_i,
        l_i,
        q,
        q_scale,
        k2 + b * s2_kb + h * s2_kh,
        k2s + b * s2_ksb + h * s2_ksh,
        v2 + b * s2_vb + h * s2_vh,
        v2s + b * s2_vsb + h * s2_vsh,
        s2_kn,
        1,
        s2_ksn,
        s2_vn,
        1,
        s2_vsn,
        n2,
        qk_scale,
        K2_SCALED,
        V2_SCALED,
        FP8_QK,
        BLOCK_N,
        D,
        DOT_F32,
    )
    out = acc / l_i[:, None]
    tl.store(
        o_ptr + b * s_ob + h * s_oh + offs_m[:, None] * s_om + offs_d[None, :],
        out.to(o_ptr.dtype.element_ty),
        mask=rows[:, None],
    )
