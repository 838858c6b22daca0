#!/usr/bin/env python3
"""Writes kernel_templates/wgmma_ops.cuh: one inline-PTX wrapper per wgmma shape fusetune uses.

wgmma names every accumulator register in its operand list (up to 128 of them), which the
C preprocessor cannot spell; so the wrappers are generated, and this script is their source.
Run it after changing SHAPES; the output is committed so NVRTC needs no build step.
"""
import pathlib
import shutil
import subprocess

# (suffix, PTX type, k per instruction, transpose immediates?) of A/B-from-shared-memory forms.
SS_KINDS = [("bf16", "bf16", 16, True), ("fp16", "f16", 16, True), ("tf32", "tf32", 8, False)]
SS_N = [64, 128, 192, 256]
# Narrow halves: split_n consumers of the tiles that `trim` makes 8 columns narrower (248 of 256)
# compute 120 columns. Their wrappers take the 64 accumulators of a 128-column half and leave
# the last 4 alone, so the kernel keeps one accumulator array for both widths.
NARROW_N = {120: 128}
# A-from-registers form: only 3xTF32, which splits x into big and small parts in registers; its
# accumulator cap (64 rows x tile_n / 128 <= 64 registers) keeps tile_n at 128 or less.
RS_N = [64, 128]


def operand_list(first, count):
    return ", ".join(f"%{first + i}" for i in range(count))


def accumulators(count):
    return ", ".join(f'"+f"(d[{i}])' for i in range(count))


def ss_wrapper(suffix, ptx_type, k, transposes, n):
    regs = n // 2
    array = NARROW_N.get(n, n) // 2  # the accumulator array the wrapper takes (its first `regs` are D)
    desc_a, desc_b, scale_d = regs, regs + 1, regs + 2
    tail = ", 1, 1, 0, 0" if transposes else ", 1, 1"
    note = f" D is the first {regs} of d." if array != regs else ""
    return f"""/// D(64 x {n}, fp32) (+)= A(64 x {k}) * B({n} x {k})^T, A and B {suffix} in shared memory.{note}
__device__ __forceinline__ void wgmma_ss_{suffix}_n{n}(float (&d)[{array}], unsigned long long desc_a,
                                                     unsigned long long desc_b, int accumulate) {{
  asm volatile(
      "{{\\n.reg .pred p;\\nsetp.ne.b32 p, %{scale_d}, 0;\\n"
      "wgmma.mma_async.sync.aligned.m64n{n}k{k}.f32.{ptx_type}.{ptx_type} "
      "{{{operand_list(0, regs)}}}, %{desc_a}, %{desc_b}, p{tail};\\n}}\\n"
      : {accumulators(regs)}
      : "l"(desc_a), "l"(desc_b), "r"(accumulate));
}}
"""


def rs_wrapper(n):
    regs = n // 2
    a0, desc_b, scale_d = regs, regs + 4, regs + 5
    return f"""/// D(64 x {n}, fp32) (+)= A(64 x 8) * B({n} x 8)^T, TF32; A in registers (4 per thread), B in shared memory.
__device__ __forceinline__ void wgmma_rs_tf32_n{n}(float (&d)[{regs}], const unsigned (&a)[4], unsigned long long desc_b,
                                                  int accumulate) {{
  asm volatile(
      "{{\\n.reg .pred p;\\nsetp.ne.b32 p, %{scale_d}, 0;\\n"
      "wgmma.mma_async.sync.aligned.m64n{n}k8.f32.tf32.tf32 "
      "{{{operand_list(0, regs)}}}, {{{operand_list(a0, 4)}}}, %{desc_b}, p, 1, 1;\\n}}\\n"
      : {accumulators(regs)}
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(accumulate));
}}
"""


def dispatch():
    lines = [
        "/// wgmma with A and B in shared memory for operand kind kOperand (hopper_args.cuh) and N columns.",
        "/// kRegs: the accumulator array, kN / 2 registers (or 64 for the narrow N = 120).",
        "template <int kOperand, int kN, int kRegs>",
        "__device__ __forceinline__ void wgmma_ss(float (&d)[kRegs], unsigned long long desc_a, unsigned long long desc_b,",
        "                                         int accumulate) {",
    ]
    first = True
    for suffix, operand in [("bf16", "kOperandBf16"), ("fp16", "kOperandFp16"), ("tf32", None)]:
        for n in SS_N + list(NARROW_N):
            cond = f"kOperand == {operand}" if operand else "(kOperand == kOperandTf32 || kOperand == kOperandTf32x3)"
            keyword = "if constexpr" if first else "} else if constexpr"
            lines.append(f"  {keyword} ({cond} && kN == {n}) {{")
            lines.append(f"    wgmma_ss_{suffix}_n{n}(d, desc_a, desc_b, accumulate);")
            first = False
    lines.append("  } else {")
    lines.append('    static_assert(kN < 0, "no wgmma_ss wrapper for this operand kind and N: add it to scripts/gen_wgmma_ops.py");')
    lines.append("  }")
    lines.append("}")
    lines.append("")
    lines.append("/// TF32 wgmma with A in registers and N columns.")
    lines.append("template <int kN>")
    lines.append("__device__ __forceinline__ void wgmma_rs_tf32(float (&d)[kN / 2], const unsigned (&a)[4], unsigned long long desc_b,")
    lines.append("                                              int accumulate) {")
    first = True
    for n in RS_N:
        keyword = "if constexpr" if first else "} else if constexpr"
        lines.append(f"  {keyword} (kN == {n}) {{")
        lines.append(f"    wgmma_rs_tf32_n{n}(d, a, desc_b, accumulate);")
        first = False
    lines.append("  } else {")
    lines.append('    static_assert(kN < 0, "no wgmma_rs_tf32 wrapper for this N: add it to scripts/gen_wgmma_ops.py");')
    lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main():
    out = [
        "// Generated by scripts/gen_wgmma_ops.py; do not edit. Inline-PTX wrappers of the Hopper wgmma",
        "// instructions the wgmma family uses (m64, fp32 accumulators, K-major A and B).",
        "#pragma once",
        "",
        '#include "hopper_args.cuh"',
        "",
        "namespace fusetune {",
        "namespace wgmma {",
        "",
    ]
    for suffix, ptx_type, k, transposes in SS_KINDS:
        for n in SS_N + list(NARROW_N):
            out.append(ss_wrapper(suffix, ptx_type, k, transposes, n))
    for n in RS_N:
        out.append(rs_wrapper(n))
    out.append(dispatch())
    out.append("}  // namespace wgmma")
    out.append("}  // namespace fusetune")
    path = pathlib.Path(__file__).resolve().parent.parent / "kernel_templates" / "wgmma_ops.cuh"
    path.write_text("\n".join(out) + "\n")
    # Formatted like every other source (scripts/check_format.sh checks it).
    if shutil.which("clang-format"):
        subprocess.run(["clang-format", "-i", str(path)], check=True)


if __name__ == "__main__":
    main()
