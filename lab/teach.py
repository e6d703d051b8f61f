"""Teaching aids: the arithmetic behind one row of the model summary, in words and numbers.

``explain(row, lang)`` writes the formulas a lecture puts on the board with this
layer's real numbers filled in, so a student can redo every figure of the builder's
table by hand: ``floor((28 + 2*1 - 3)/1) + 1 = 28``, ``1*3*3*32 + 32 = 320``. The
results are computed here from the formulas as written, not copied from the row, so
tests/test_teach.py proves the words agree with the summary.

Every sentence lives in :data:`TEMPLATES`, one dict per language with the same keys
and placeholders ("en" and "ko"), so a language switch only has to pass ``lang``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from lab.layers import format_shape, get_layer_type, make_activation
from lab.spec import LayerRow

__all__ = ["Step", "Explanation", "TEMPLATES", "LANGUAGES", "explain"]


@dataclass(frozen=True)
class Step:
    """One line of arithmetic: what it computes, the general rule, the rule with numbers."""

    label: str  # 'Output size'
    rule: str  # 'floor((in + 2*pad - kernel) / stride) + 1'
    numbers: str  # 'floor((28 + 2*1 - 3)/1) + 1 = 28'


@dataclass(frozen=True)
class Explanation:
    """The arithmetic of one layer (steps) and what it means (notes)."""

    title: str
    steps: tuple[Step, ...]
    notes: tuple[str, ...]

    def markdown(self) -> str:
        """Formulas in code spans, so their '*' stay multiplications and never turn into italics."""
        steps = "\n".join(f"- {s.label}: `{s.rule}`  \n  `{s.numbers}`" for s in self.steps)
        return "\n\n".join(filter(None, [f"**{self.title}**", steps, *self.notes])) + "\n"


# Language-neutral: the functions' own definitions, as written in PyTorch's docs.
FUNCTION_FORMULAS = {
    None: "x",
    "relu": "max(0, x)",
    "leaky_relu": "max(0.01*x, x)",
    "elu": "x if x > 0 else exp(x) - 1",
    "gelu": "x*Φ(x)",
    "silu": "x*sigmoid(x)",
    "sigmoid": "1/(1 + exp(-x))",
    "tanh": "(exp(x) - exp(-x))/(exp(x) + exp(-x))",
    "softmax": "exp(x_i)/sum_j exp(x_j)",
}
EXAMPLE_INPUTS = (-2.0, 0.0, 2.0)  # one negative, zero, one positive: shows what each function does

TEMPLATES: dict[str, dict[str, str]] = {
    "en": {
        "type.conv2d": "Convolution",
        "type.maxpool2d": "Max pooling",
        "type.avgpool2d": "Average pooling",
        "type.batchnorm": "Batch normalisation",
        "type.dropout": "Dropout",
        "type.flatten": "Flatten",
        "type.global_avg_pool": "Global average pooling",
        "type.dense": "Dense (fully connected)",
        "type.activation": "Activation",
        "type.residual": "Residual block",
        "size": "Output size",
        "height": "Output height",
        "width": "Output width",
        "params": "Parameters",
        "macs": "Multiply-accumulates per image",
        "no_params": "No parameters: nothing in this layer is learned.",
        "activation": "Then {act} is applied to every value: `{formula}`.",
        "no_activation": "No activation: the output stays linear (a later layer may add one).",
        "conv.size_rule": "floor((in + 2*pad - kernel) / stride) + 1",
        "conv.params_rule": "in_ch*k*k*filters + filters",
        "conv.macs_rule": "out_h*out_w*filters * in_ch*k*k",
        "conv.dense_label": "A dense layer joining the same input and output",
        "conv.sharing": "Weight sharing: each of the {filters} filters is one {k}x{k}x{in_ch} set of weights "
                        "that slides over all {positions} output positions and looks only at the patch under "
                        "it. So the layer needs {params} parameters, where a dense layer connecting the same "
                        "{in_n} inputs to the same {out_n} outputs would need {dense}, about {ratio} times "
                        "as many.",
        "conv.same": "Padding 'same' adds {top} pixel(s) on each side, so that the output is "
                     "ceil(in / stride) = ceil({size}/{stride}) = {out} pixels.",
        "conv.same_uneven": "Padding 'same' needs {total} pixel(s) in all here, an odd number: {top} on the "
                            "top/left and {bottom} on the bottom/right (as TensorFlow does), so that the output is "
                            "ceil(in / stride) = ceil({size}/{stride}) = {out} pixels.",
        "pool.size_rule": "floor((in - size) / stride) + 1",
        "pool.kept": "Values kept per image",
        "pool.kept_rule": "out values / in values",
        "maxpool2d.note": "Max pooling keeps the strongest response in each {size}x{size} window: whether a "
                          "feature is present there survives, which makes the next layers tolerate small "
                          "shifts. It loses where exactly in the window the feature was, and the other "
                          "{lost} value(s) of each window. The {channels} channels are pooled separately.",
        "avgpool2d.note": "Average pooling keeps the mean of each {size}x{size} window: how strong a feature "
                          "is in that area, smoothed. It loses sharp peaks (one strong response among weak "
                          "ones is diluted by the other {lost}) and where in the window it was. The "
                          "{channels} channels are pooled separately.",
        "pool.remainder": "The windows do not tile the input exactly: the last {rows} row(s) and {cols} "
                          "column(s) fall in no window and are dropped (that is the floor).",
        "batchnorm.params": "Trained: scale γ and shift β per channel",
        "batchnorm.stats": "Not trained: running mean and variance per channel",
        "batchnorm.total": "Numbers stored in the checkpoint",
        "batchnorm.over_maps": "over the images of the batch and all {positions} positions of its map",
        "batchnorm.over_flat": "over the images of the batch",
        "batchnorm.train": "Training: each of the {channels} channels is normalised with the mean and variance "
                           "of the current batch, computed {over}, then scaled by γ and shifted by β. The "
                           "running mean and variance move 10% of the way towards the batch's (momentum 0.1).",
        "batchnorm.eval": "Evaluation: the stored running mean and variance replace the batch's, so a "
                          "prediction does not depend on which other images share its batch, and one image "
                          "alone works. (PyTorch also stores one counter, num_batches_tracked.)",
        "dropout.scale": "Scale for the kept values (training)",
        "dropout.zeroed": "Values zeroed per image, on average (training)",
        "dropout.zeroed_rule": "p * values",
        "dropout.train": "Training: each of the {values} values is set to 0 with probability {rate}, with a new "
                         "random choice for every image of every batch, and the kept ones are multiplied by "
                         "{scale} so the expected sum stays the same. No unit can rely on a particular "
                         "partner, which fights overfitting.",
        "dropout.eval": "Evaluation: dropout does nothing; every value passes unchanged (the scaling during "
                        "training already made the sizes match).",
        "dense.params_rule": "in*out + out",
        "dense.macs_rule": "in*out",
        "dense.note": "Every one of the {out} outputs has its own weight for every one of the {in_n} inputs, "
                      "plus a bias: nothing is shared, which is why dense layers on large inputs hold most of "
                      "a CNN's parameters.",
        "dense.output": "This is the output layer: its {out} values are the logits, one per class; the loss "
                        "applies softmax to them, so no activation here.",
        "flatten.values": "Values per image",
        "flatten.rule": "C*H*W",
        "flatten.note": "Flatten only rearranges the {channels} maps of {h}x{w} into one vector of {values} "
                        "values; nothing is computed. A dense layer after it gives every (channel, position) "
                        "its own weight: it sees where a feature was, at the price of many weights.",
        "flatten.flat": "The input is already a flat vector of {values} values: flatten changes nothing.",
        "gap.positions": "Positions averaged per channel",
        "gap.flatten": "A flatten here would give",
        "gap.note": "Global average pooling replaces each of the {channels} maps by its mean over all "
                    "{positions} positions: it keeps how strongly each feature is present anywhere in the "
                    "image and loses where. The next layer gets {channels} values instead of the {flat} a "
                    "flatten would give ({positions} times fewer weights for it to learn), and because each "
                    "value is one map's mean, CAM can project the class weights back onto the maps.",
        "residual.size_rule": "floor((in + 2*1 - 3) / stride) + 1",
        "residual.params_rule": "in_ch*3*3*F + F*3*3*F + 2*(2*F)",
        "residual.params_rule_proj": "in_ch*3*3*F + F*3*3*F + 2*(2*F) + in_ch*F + 2*F",
        "residual.macs_rule": "out_h*out_w*F * (9*in_ch + 9*F)",
        "residual.macs_rule_proj": "out_h*out_w*F * (9*in_ch + 9*F + in_ch)",
        "residual.note": "output = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)). The two 3x3 "
                         "convolutions only learn the change to add to the input, and the addition gives the "
                         "gradient a direct path back, so deep stacks still train (He et al., 2016). The "
                         "convolutions have no bias: the batchnorm's β after each one does that job.",
        "residual.identity": "Input and output shapes match ({shape}), so the shortcut is the identity: x is "
                             "added as it is.",
        "residual.projection": "The input {in_shape} and the output {out_shape} differ, so the shortcut is a "
                               "1x1 convolution with stride {stride} and a batchnorm (the projection, its "
                               "{extra} parameters are the last terms of the sum).",
        "activation.examples": "Examples",
        "activation.note": "{name} is applied to each of the {values} values on its own: the shape {shape} "
                           "does not change. Without such non-linear functions a stack of layers would "
                           "collapse into one linear map.",
        "activation.softmax": "Softmax is not applied to each value alone: it works across the {channels} "
                              "values of dimension 1 (the channels, at every position), which become "
                              "positive and sum to 1. The shape {shape} does not change.",
        "activation.identity": "This activation is linear (the identity): the values pass unchanged.",
    },
    "ko": {
        "type.conv2d": "합성곱",
        "type.maxpool2d": "최대 풀링",
        "type.avgpool2d": "평균 풀링",
        "type.batchnorm": "배치 정규화",
        "type.dropout": "드롭아웃",
        "type.flatten": "평탄화 (Flatten)",
        "type.global_avg_pool": "전역 평균 풀링",
        "type.dense": "완전연결층 (Dense)",
        "type.activation": "활성화 함수",
        "type.residual": "잔차 블록",
        "size": "출력 크기",
        "height": "출력 높이",
        "width": "출력 너비",
        "params": "파라미터 수",
        "macs": "이미지 한 장당 곱셈-누산(MAC) 횟수",
        "no_params": "파라미터가 없습니다: 이 층에서 학습되는 값은 없습니다.",
        "activation": "그다음 모든 값에 {act}을(를) 적용합니다: `{formula}`.",
        "no_activation": "활성화 함수가 없습니다: 출력은 선형 그대로입니다 (뒤의 층에서 적용할 수 있습니다).",
        "conv.size_rule": "floor((입력 + 2*패딩 - 커널) / 스트라이드) + 1",
        "conv.params_rule": "입력채널*k*k*필터수 + 필터수",
        "conv.macs_rule": "출력높이*출력너비*필터수 * 입력채널*k*k",
        "conv.dense_label": "같은 입력과 출력을 잇는 완전연결층이라면",
        "conv.sharing": "가중치 공유: {filters}개의 필터는 각각 {k}x{k}x{in_ch} 크기의 가중치 한 벌이고, 이 한 "
                        "벌이 {positions}개의 출력 위치를 모두 훑으며 바로 아래의 작은 영역만 봅니다. 그래서 "
                        "이 층의 파라미터는 {params}개뿐이지만, 같은 {in_n}개 입력을 같은 {out_n}개 출력에 모두 "
                        "연결하는 완전연결층이라면 {dense}개, 약 {ratio}배가 필요합니다.",
        "conv.same": "'same' 패딩은 출력 크기가 ceil(입력 / 스트라이드) = ceil({size}/{stride}) = {out} 픽셀이 "
                     "되도록 양쪽에 {top} 픽셀씩 0을 덧붙입니다.",
        "conv.same_uneven": "여기서는 'same' 패딩에 모두 {total} 픽셀이 필요한데 홀수라서, 위/왼쪽에 {top}, "
                            "아래/오른쪽에 {bottom} 픽셀을 덧붙입니다 (TensorFlow와 같은 방식). 그래서 출력 "
                            "크기는 ceil(입력 / 스트라이드) = ceil({size}/{stride}) = {out} 픽셀입니다.",
        "pool.size_rule": "floor((입력 - 윈도우) / 스트라이드) + 1",
        "pool.kept": "이미지 한 장당 남는 값의 비율",
        "pool.kept_rule": "출력 값 개수 / 입력 값 개수",
        "maxpool2d.note": "최대 풀링은 {size}x{size} 윈도우마다 가장 큰 값 하나만 남깁니다. 그 영역에 특징이 "
                          "있는지는 살아남기 때문에 다음 층이 작은 위치 이동에 덜 민감해집니다. 대신 윈도우 "
                          "안의 정확한 위치와 나머지 {lost}개 값은 버려집니다. {channels}개 채널은 각각 따로 "
                          "풀링됩니다.",
        "avgpool2d.note": "평균 풀링은 {size}x{size} 윈도우마다 평균을 남깁니다. 그 영역에 특징이 얼마나 강한지가 "
                          "부드럽게 남습니다. 대신 뾰족한 최댓값은 나머지 {lost}개 값과 섞여 희석되고, "
                          "윈도우 안의 위치도 사라집니다. {channels}개 채널은 각각 따로 풀링됩니다.",
        "pool.remainder": "윈도우가 입력을 빈틈없이 나누어 덮지 못합니다: 마지막 {rows}개 행과 {cols}개 열은 "
                          "어느 윈도우에도 들어가지 않아 버려집니다 (floor가 바로 이것입니다).",
        "batchnorm.params": "학습되는 값: 채널마다 스케일 γ와 시프트 β",
        "batchnorm.stats": "학습되지 않는 값: 채널마다 이동 평균과 이동 분산",
        "batchnorm.total": "체크포인트에 저장되는 값",
        "batchnorm.over_maps": "배치의 모든 이미지와 특징 맵의 {positions}개 위치 전체에 대해",
        "batchnorm.over_flat": "배치의 모든 이미지에 대해",
        "batchnorm.train": "학습 시: {channels}개 채널 각각을 현재 배치의 평균과 분산({over} 계산)으로 "
                           "정규화한 뒤, γ를 곱하고 β를 더합니다. 이동 평균과 이동 분산은 배치의 값 쪽으로 "
                           "10%씩 갱신됩니다 (momentum 0.1).",
        "batchnorm.eval": "평가(추론) 시: 배치의 통계 대신 저장된 이동 평균과 이동 분산을 씁니다. 그래서 "
                          "예측이 같은 배치에 어떤 이미지가 함께 있는지에 좌우되지 않고, 이미지 한 장만으로도 "
                          "동작합니다. (PyTorch는 num_batches_tracked 카운터 하나도 함께 저장합니다.)",
        "dropout.scale": "남은 값에 곱하는 배율 (학습 시)",
        "dropout.zeroed": "이미지 한 장당 0이 되는 값의 평균 개수 (학습 시)",
        "dropout.zeroed_rule": "p * 값 개수",
        "dropout.train": "학습 시: {values}개 값 각각을 {rate}의 확률로 0으로 만듭니다. 어떤 값을 0으로 만들지는 "
                         "배치의 이미지마다 새로 무작위로 정하고, 남은 값은 {scale}배로 키워 합의 기댓값을 그대로 "
                         "유지합니다. 특정 뉴런끼리 서로 기대지 못하게 하여 과적합을 줄입니다.",
        "dropout.eval": "평가(추론) 시: 드롭아웃은 아무것도 하지 않습니다. 모든 값이 그대로 통과합니다 (학습 "
                        "때의 배율 조정으로 이미 크기가 맞춰져 있습니다).",
        "dense.params_rule": "입력*출력 + 출력",
        "dense.macs_rule": "입력*출력",
        "dense.note": "{out}개 출력 각각이 {in_n}개 입력 하나하나에 자기만의 가중치를 갖고, 편향도 하나씩 "
                      "있습니다. 공유하는 것이 없어서, 큰 입력을 받는 완전연결층이 CNN 파라미터의 대부분을 "
                      "차지합니다.",
        "dense.output": "출력층입니다: {out}개 값은 클래스마다 하나인 로짓이고, 소프트맥스는 손실 함수가 "
                        "적용하므로 여기에는 활성화 함수가 없습니다.",
        "flatten.values": "이미지 한 장당 값의 개수",
        "flatten.rule": "C*H*W",
        "flatten.note": "평탄화는 {h}x{w} 크기의 특징 맵 {channels}개를 값 {values}개짜리 벡터 하나로 다시 "
                        "늘어놓을 뿐, 계산은 없습니다. 뒤따르는 완전연결층은 (채널, 위치)마다 따로 가중치를 "
                        "두므로 특징이 어디에 있었는지 알 수 있지만, 그 대가로 가중치가 많이 필요합니다.",
        "flatten.flat": "입력이 이미 값 {values}개짜리 벡터입니다: 평탄화해도 달라지는 것이 없습니다.",
        "gap.positions": "채널마다 평균 내는 위치의 수",
        "gap.flatten": "여기서 평탄화를 했다면",
        "gap.note": "전역 평균 풀링은 {channels}개 특징 맵 각각을 {positions}개 위치 전체의 평균 하나로 "
                    "바꿉니다. 각 특징이 이미지 어딘가에 얼마나 강하게 있는지는 남고, 위치는 사라집니다. "
                    "다음 층은 평탄화했을 때의 {flat}개 대신 {channels}개 값만 받으므로 학습할 가중치가 "
                    "{positions}배 적고, 각 값이 특징 맵 하나의 평균이라서 CAM이 클래스 가중치를 특징 맵 "
                    "위로 되돌려 그릴 수 있습니다.",
        "residual.size_rule": "floor((입력 + 2*1 - 3) / 스트라이드) + 1",
        "residual.params_rule": "입력채널*3*3*F + F*3*3*F + 2*(2*F)",
        "residual.params_rule_proj": "입력채널*3*3*F + F*3*3*F + 2*(2*F) + 입력채널*F + 2*F",
        "residual.macs_rule": "출력높이*출력너비*F * (9*입력채널 + 9*F)",
        "residual.macs_rule_proj": "출력높이*출력너비*F * (9*입력채널 + 9*F + 입력채널)",
        "residual.note": "출력 = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)). 두 3x3 합성곱은 입력에 "
                         "더할 변화량만 학습하고, 더하기 연산이 기울기가 곧바로 돌아가는 길이 되어 층을 깊게 "
                         "쌓아도 학습이 됩니다 (He et al., 2016). 합성곱에는 편향이 없습니다: 뒤따르는 배치 "
                         "정규화의 β가 그 역할을 합니다.",
        "residual.identity": "입력과 출력의 형태가 같으므로({shape}) 지름길(shortcut)은 항등 함수입니다: x를 "
                             "그대로 더합니다.",
        "residual.projection": "입력({in_shape})과 출력({out_shape})의 형태가 달라서, 지름길은 스트라이드 "
                               "{stride}의 1x1 합성곱과 배치 정규화(프로젝션)입니다. 그 {extra}개 파라미터가 "
                               "합의 마지막 항입니다.",
        "activation.examples": "예시",
        "activation.note": "{name}은(는) {values}개 값 각각에 따로 적용되며, 형태({shape})는 바뀌지 않습니다. "
                           "이런 비선형 함수가 없으면 층을 아무리 쌓아도 하나의 선형 변환으로 합쳐집니다.",
        "activation.softmax": "소프트맥스는 값 하나하나에 따로 적용되지 않습니다: 1번 차원({channels}개 "
                              "채널, 위치마다)의 값 전체에 걸쳐 계산되어 모두 양수가 되고 합이 1이 됩니다. "
                              "형태({shape})는 바뀌지 않습니다.",
        "activation.identity": "이 활성화 함수는 선형(항등 함수)입니다: 값이 그대로 통과합니다.",
    },
}
LANGUAGES = tuple(TEMPLATES)

Text = Callable[..., str]  # (key, **values) -> the template in the chosen language, filled


def _num(x: float) -> str:
    """Whole numbers with thousands separators, others with at most 4 significant digits."""
    if float(x).is_integer():
        return f"{int(x):,}"
    return f"{x:,.4g}" if abs(x) < 1000 else f"{x:,.1f}"


def _ratio(x: float) -> str:
    """'61,544' for big ratios, '0.2' where a tiny input makes the dense layer the smaller one."""
    return _num(round(x) if x >= 10 else round(x, 1))


def _values(xs: list[float] | tuple[float, ...]) -> str:
    return ", ".join(_num(round(x, 3) + 0.0) for x in xs)  # + 0.0 turns -0.0 into 0.0


def _conv_size(size: int, before: int, after: int, kernel: int, stride: int) -> tuple[str, int]:
    pad = f"2*{before}" if before == after else f"({before}+{after})"
    out = (size + before + after - kernel) // stride + 1
    return f"floor(({size} + {pad} - {kernel})/{stride}) + 1 = {out}", out


def _size_steps(t: Text, rule: str, height: str, width: str) -> list[Step]:
    """One step when height and width do the same sum, else one each."""
    if height == width:
        return [Step(t("size"), rule, height)]
    return [Step(t("height"), rule, height), Step(t("width"), rule, width)]


def _activation_note(t: Text, act: str | None) -> str:
    if act is None:
        return t("no_activation")
    return t("activation", act=act, formula=FUNCTION_FORMULAS[act])


def _conv(row: LayerRow, t: Text) -> tuple[list[Step], list[str]]:
    c, h, w = row.in_shape
    p = row.layer
    f, k, s = p["filters"], p["kernel"], p["stride"]
    (top, bottom), (left, right) = get_layer_type("conv2d")._pads(row.in_shape, p)
    height, out_h = _conv_size(h, top, bottom, k, s)
    width, out_w = _conv_size(w, left, right, k, s)
    params = c * k * k * f + f
    in_n, out_n = math.prod(row.in_shape), f * out_h * out_w
    dense = in_n * out_n + out_n
    steps = _size_steps(t, t("conv.size_rule"), height, width) + [
        Step(t("params"), t("conv.params_rule"), f"{c}*{k}*{k}*{f} + {f} = {params:,}"),
        Step(t("macs"), t("conv.macs_rule"), f"{out_h}*{out_w}*{f} * {c}*{k}*{k} = {out_h * out_w * f * c * k * k:,}"),
        Step(t("conv.dense_label"), t("dense.params_rule"), f"{in_n:,}*{out_n:,} + {out_n:,} = {dense:,}"),
    ]
    notes = []
    if p["padding"] == "same":
        key = "conv.same" if top == bottom else "conv.same_uneven"
        notes.append(t(key, top=top, bottom=bottom, total=top + bottom, size=h, stride=s, out=out_h))
    notes.append(t("conv.sharing", filters=f, k=k, in_ch=c, positions=_num(out_h * out_w), params=_num(params),
                   in_n=_num(in_n), out_n=_num(out_n), dense=_num(dense), ratio=_ratio(dense / params)))
    notes.append(_activation_note(t, p["activation"]))
    return steps, notes


def _pool(row: LayerRow, t: Text) -> tuple[list[Step], list[str]]:
    c, h, w = row.in_shape
    size = row.layer["size"]
    s = row.layer["stride"] or size
    out_h, out_w = (h - size) // s + 1, (w - size) // s + 1
    in_n, out_n = c * h * w, c * out_h * out_w
    steps = _size_steps(t, t("pool.size_rule"), f"floor(({h} - {size})/{s}) + 1 = {out_h}",
                        f"floor(({w} - {size})/{s}) + 1 = {out_w}")
    steps.append(Step(t("pool.kept"), t("pool.kept_rule"), f"{out_n:,}/{in_n:,} = {_num(round(100 * out_n / in_n, 1))}%"))
    notes = [t(f"{row.layer['type']}.note", size=size, lost=size * size - 1, channels=c)]
    rows, cols = h - ((out_h - 1) * s + size), w - ((out_w - 1) * s + size)
    if rows or cols:
        notes.append(t("pool.remainder", rows=rows, cols=cols))
    return steps, [*notes, t("no_params")]


def _batchnorm(row: LayerRow, t: Text) -> tuple[list[Step], list[str]]:
    c = row.in_shape[0]
    over = (t("batchnorm.over_maps", positions=_num(row.in_shape[1] * row.in_shape[2]))
            if len(row.in_shape) == 3 else t("batchnorm.over_flat"))
    steps = [
        Step(t("batchnorm.params"), "2*C", f"2*{c} = {2 * c:,}"),
        Step(t("batchnorm.stats"), "2*C", f"2*{c} = {2 * c:,}"),
        Step(t("batchnorm.total"), "2*C + 2*C = 4*C", f"2*{c} + 2*{c} = {4 * c:,}"),
    ]
    return steps, [t("batchnorm.train", channels=c, over=over), t("batchnorm.eval")]


def _dropout(row: LayerRow, t: Text) -> tuple[list[Step], list[str]]:
    rate, values = row.layer["rate"], math.prod(row.in_shape)
    scale = 1 / (1 - rate)
    steps = [
        Step(t("dropout.scale"), "1/(1 - p)", f"1/(1 - {rate:g}) = {_num(scale)}"),
        Step(t("dropout.zeroed"), t("dropout.zeroed_rule"), f"{rate:g}*{values:,} = {_num(rate * values)}"),
    ]
    notes = [t("dropout.train", values=_num(values), rate=f"{rate:g}", scale=_num(scale)), t("dropout.eval")]
    return steps, [*notes, t("no_params")]


def _dense(row: LayerRow, t: Text) -> tuple[list[Step], list[str]]:
    n, units = row.in_shape[0], row.layer["units"]
    steps = [
        Step(t("params"), t("dense.params_rule"), f"{n:,}*{units:,} + {units:,} = {n * units + units:,}"),
        Step(t("macs"), t("dense.macs_rule"), f"{n:,}*{units:,} = {n * units:,}"),
    ]
    notes = [t("dense.note", out=_num(units), in_n=_num(n))]
    is_output = row.name == "output"
    notes.append(t("dense.output", out=_num(units)) if is_output else _activation_note(t, row.layer["activation"]))
    return steps, notes


def _flatten(row: LayerRow, t: Text) -> tuple[list[Step], list[str]]:
    values = math.prod(row.in_shape)
    if len(row.in_shape) != 3:
        return [], [t("flatten.flat", values=_num(values)), t("no_params")]
    c, h, w = row.in_shape
    step = Step(t("flatten.values"), t("flatten.rule"), f"{c}*{h}*{w} = {values:,}")
    return [step], [t("flatten.note", channels=c, h=h, w=w, values=_num(values)), t("no_params")]


def _global_avg_pool(row: LayerRow, t: Text) -> tuple[list[Step], list[str]]:
    c, h, w = row.in_shape
    steps = [
        Step(t("gap.positions"), "H*W", f"{h}*{w} = {h * w:,}"),
        Step(t("gap.flatten"), "C*H*W", f"{c}*{h}*{w} = {c * h * w:,}"),
    ]
    note = t("gap.note", channels=c, positions=_num(h * w), flat=_num(c * h * w))
    return steps, [note, t("no_params")]


def _residual(row: LayerRow, t: Text) -> tuple[list[Step], list[str]]:
    c, h, w = row.in_shape
    f, s = row.layer["filters"], row.layer["stride"]
    height, out_h = _conv_size(h, 1, 1, 3, s)
    width, out_w = _conv_size(w, 1, 1, 3, s)
    projects = s != 1 or c != f
    extra = c * f + 2 * f if projects else 0
    params = c * 9 * f + f * 9 * f + 4 * f + extra
    macs = out_h * out_w * f * (9 * c + 9 * f + (c if projects else 0))
    suffix = "_proj" if projects else ""
    sums = f"{c}*3*3*{f} + {f}*3*3*{f} + 2*(2*{f})" + (f" + {c}*{f} + 2*{f}" if projects else "")
    inner = f"9*{c} + 9*{f}" + (f" + {c}" if projects else "")
    steps = _size_steps(t, t("residual.size_rule"), height, width) + [
        Step(t("params"), t(f"residual.params_rule{suffix}"), f"{sums} = {params:,}"),
        Step(t("macs"), t(f"residual.macs_rule{suffix}"), f"{out_h}*{out_w}*{f} * ({inner}) = {macs:,}"),
    ]
    shortcut = (t("residual.projection", in_shape=format_shape(row.in_shape), stride=s, extra=_num(extra),
                  out_shape=format_shape((f, out_h, out_w)))
                if projects else t("residual.identity", shape=format_shape(row.in_shape)))
    return steps, [t("residual.note"), shortcut]


def _activation(row: LayerRow, t: Text) -> tuple[list[Step], list[str]]:
    fn = row.layer["function"]
    if fn is None:
        return [], [t("activation.identity"), t("no_params")]
    with torch.inference_mode():
        outputs = make_activation(fn)(torch.tensor([EXAMPLE_INPUTS]))[0].tolist()
    step = Step(t("activation.examples"), f"{fn}(x) = {FUNCTION_FORMULAS[fn]}",
                f"{fn}({_values(EXAMPLE_INPUTS)}) = ({_values(outputs)})")
    shape = format_shape(row.in_shape)
    note = (t("activation.softmax", channels=row.in_shape[0], shape=shape) if fn == "softmax"
            else t("activation.note", name=fn, values=_num(math.prod(row.in_shape)), shape=shape))
    return [step], [note, t("no_params")]


EXPLAINERS: dict[str, Callable[[LayerRow, Text], tuple[list[Step], list[str]]]] = {
    "conv2d": _conv, "maxpool2d": _pool, "avgpool2d": _pool, "batchnorm": _batchnorm, "dropout": _dropout,
    "flatten": _flatten, "global_avg_pool": _global_avg_pool, "dense": _dense, "activation": _activation,
    "residual": _residual,
}


def explain(row: LayerRow, lang: str = "en") -> Explanation:
    """The arithmetic of one summary row in words and numbers, in English ('en') or Korean ('ko')."""
    if lang not in TEMPLATES:
        raise ValueError(f"unknown language {lang!r}; use one of: {', '.join(LANGUAGES)}")
    templates = TEMPLATES[lang]

    def t(key: str, **values) -> str:
        return templates[key].format(**values)

    kind = row.layer["type"]
    steps, notes = EXPLAINERS[kind](row, t)
    title = f"{row.name} · {t('type.' + kind)} · {format_shape(row.in_shape)} → {format_shape(row.out_shape)}"
    return Explanation(title, tuple(steps), tuple(notes))
