"""Section 10: people — clustering quality, verification rate at a fixed FAR, clustering time.

Quality, on a labelled set built from the face images available here (tests/support/labelled_faces:
the six people of t1.jpg and the Tom Hanks portrait, each in varied augmentations; different
people never share a label), with the model pack every arm loads:
- clustering: pairwise precision / recall / F1 of the app's density rule (gpu_app/people, the
  pack's threshold, PEOPLE_MIN_FACES=3), beside plain threshold linking (connected components of
  the "similarity >= threshold" graph) on the same embeddings in the same run;
- verification: the true-accept rate at a false-accept rate of 1% and 0.1% (thresholds taken from
  the impostor pairs' quantiles), beside a no-model baseline (cosine of 32x32 grey face crops).
Scale: clustering time of synthetic faces (people of 8 faces, as in section 5) at 100k (quick:
20k): exact k-NN (FAISS, flat) plus the rule, beside threshold linking over the same k-NN.
"""

from __future__ import annotations

import io
import time
from typing import Any

import numpy as np

from bench.core import HEADINGS, Options, Ratio, SectionResult, Table, fmt, log, model_pack

FARS = (0.01, 0.001)


def _embed_labelled(variants: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    from PIL import Image

    from gpu_app.engine.insightface_engine import InsightFaceEngine
    from gpu_app.imaging import decode_image
    from tests.support.labelled_faces import labelled_images

    root, pack = model_pack()
    engine = InsightFaceEngine(model_root=root, model_pack=pack, provider_preference="cpu")

    def faces(data: bytes) -> list[Any]:
        decoded = decode_image(data, max_pixels=40_000_000)
        result = engine.analyze_each([decoded.bgr])[0]
        if isinstance(result, Exception):
            raise result
        return [face.scaled(*decoded.scale) for face in result]

    images = labelled_images(lambda data: [f.bbox for f in faces(data)], variants=variants)
    labels, vectors, pixels = [], [], []
    for image in images:
        found = faces(image.jpeg)
        if not found:
            log(f"people: no face found in {image.label} {image.variant}; left out")
            continue
        face = max(found, key=lambda f: f.area)
        labels.append(image.label)
        vectors.append(face.embedding)
        left, top, right, bottom = (int(v) for v in face.bbox)
        crop = Image.open(io.BytesIO(image.jpeg)).convert("L").crop((left, top, right, bottom))
        grey = np.asarray(crop.resize((32, 32)), dtype=np.float32).reshape(-1)
        grey -= grey.mean()
        pixels.append(grey / max(float(np.linalg.norm(grey)), 1e-6))
    return np.array(labels), np.stack(vectors), np.stack(pixels), pack


def threshold_linking(sims: np.ndarray, ids: np.ndarray, threshold: float) -> np.ndarray:
    """Connected components of the graph of k-NN pairs with similarity >= threshold (union-find)."""
    parent = np.arange(len(ids))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return int(i)

    rows, cols = np.nonzero(sims >= threshold)
    for i, j in zip(rows.tolist(), ids[rows, cols].tolist(), strict=True):
        if j >= 0 and i != j:
            a, b = root(i), root(j)
            if a != b:
                parent[max(a, b)] = min(a, b)
    roots = np.array([root(i) for i in range(len(ids))])
    _, labels = np.unique(roots, return_inverse=True)
    return labels


def verification(
    vectors: np.ndarray, labels: np.ndarray
) -> tuple[dict[float, float], np.ndarray, np.ndarray]:
    sims = vectors @ vectors.T
    upper = np.triu_indices(len(labels), 1)
    same = (labels[:, None] == labels[None, :])[upper]
    scores = sims[upper]
    genuine, impostor = scores[same], scores[~same]
    rates = {}
    for far in FARS:
        threshold = float(np.quantile(impostor, 1 - far))
        rates[far] = float((genuine > threshold).mean())
    return rates, genuine, impostor


def quality(options: Options) -> SectionResult:
    from gpu_app.config import DEFAULT_MATCH_THRESHOLDS, FALLBACK_MATCH_THRESHOLD
    from gpu_app.people.clustering import ClusterPolicy, cluster_vectors, knn, pairwise_scores

    variants = options.pick(12, 4)
    labels, vectors, pixels, pack = _embed_labelled(variants)
    threshold = DEFAULT_MATCH_THRESHOLDS.get(pack, FALLBACK_MATCH_THRESHOLD)
    rng = np.random.default_rng(16)
    rows, f1_ratios = [], []
    # Arrival order matters to an incremental rule: several shuffles, the same for both arms.
    orders = [rng.permutation(len(labels)) for _ in range(options.pick(5, 2))]
    totals: dict[str, list[dict[str, float]]] = {"density": [], "linking": []}
    for order in orders:
        ordered = vectors[order]
        density = pairwise_scores(cluster_vectors(ordered, ClusterPolicy(threshold, 3)), labels[order])
        sims, ids = knn(ordered, len(ordered))
        linking = pairwise_scores(threshold_linking(sims, ids, threshold), labels[order])
        totals["density"].append(density)
        totals["linking"].append(linking)
        if linking["f1"] > 0:
            f1_ratios.append(density["f1"] / linking["f1"])
    for arm, name in (("density", "density rule (min faces 3)"), ("linking", "threshold linking (baseline)")):
        mean = {k: float(np.mean([s[k] for s in totals[arm]])) for k in ("precision", "recall", "f1")}
        rows.append([name, fmt(mean["precision"], 3), fmt(mean["recall"], 3), fmt(mean["f1"], 3)])
    model_rates, genuine, impostor = verification(vectors, labels)
    pixel_rates, _, _ = verification(pixels, labels)
    identities = len(set(labels.tolist()))
    result = SectionResult(key="people", heading=HEADINGS["people"])
    result.tables.append(
        Table(
            f"Clustering, {len(labels)} faces of {identities} people, pack {pack}, threshold {threshold} "
            f"(mean of {len(orders)} arrival orders)",
            ["method", "pairwise precision", "recall", "F1"],
            rows,
        )
    )
    result.tables.append(
        Table(
            "Verification: true-accept rate at a fixed false-accept rate",
            ["FAR", f"{pack} embeddings", "32x32 grey crops (baseline)"],
            [[f"{far:.1%}", fmt(model_rates[far], 3), fmt(pixel_rates[far], 3)] for far in FARS],
        )
    )
    result.ratios.append(
        Ratio(
            "people F1: density rule vs threshold linking",
            f1_ratios,
            "pairwise F1 of the app's clustering over plain threshold linking, same faces and orders",
        )
    )
    result.notes.append(
        f"Same person: cosine min {genuine.min():.3f}, 5th percentile {np.percentile(genuine, 5):.3f}, "
        f"median {np.median(genuine):.3f}. Different people: max {impostor.max():.3f}, 99th percentile "
        f"{np.percentile(impostor, 99):.3f}, median {np.median(impostor):.3f}. At the pack's threshold "
        f"{threshold}: {np.mean(genuine >= threshold):.1%} of same-person pairs accepted, "
        f"{np.mean(impostor >= threshold):.2%} of different-person pairs."
    )
    separable = genuine.min() > impostor.max()
    result.notes.append(
        "Honest limits: the set is small (seven identities, augmentations of one photo each), so the "
        "figures say how the rule and the recognizer cope with pose, light, blur, grey and JPEG "
        "changes of one picture, not with ageing or different photos of a person. "
        + (
            f"On this set {pack}'s same-person and different-person cosines are apart."
            if separable
            else f"{pack}'s same-person and different-person cosines overlap (see above): no threshold "
            "separates every pair, so a person's hardest variants wait unassigned or, below the "
            "threshold, would join the wrong person."
        )
        + (
            " offline_sc (MobileFace, 256-d) is a weak recognizer: quote a MODEL_PACK=buffalo_l run "
            "for production."
            if pack == "offline_sc"
            else ""
        )
    )
    result.numbers.update(
        {
            "people_f1": float(np.mean([s["f1"] for s in totals["density"]])),
            "linking_f1": float(np.mean([s["f1"] for s in totals["linking"]])),
            "tar_far_1pct": model_rates[0.01],
        }
    )
    return result


def scale(options: Options, result: SectionResult) -> None:
    from bench.index import people_and_faces
    from gpu_app.people.clustering import ClusterPolicy, cluster_vectors, knn, pairwise_scores

    count = options.pick(100_000, 20_000)
    rng = np.random.default_rng(5)
    _, faces = people_and_faces(rng, count, 256)
    truth = np.arange(count) // 8
    policy = ClusterPolicy(0.5, 3)  # section 5's synthetic faces: ~0.64 within a person, ~0 between
    log(f"people: clustering {count} synthetic faces")
    started = time.perf_counter()
    neighbours = knn(faces, policy.neighbours + 1)
    knn_seconds = time.perf_counter() - started
    started = time.perf_counter()
    labels = cluster_vectors(faces, policy, neighbours)
    rule_seconds = time.perf_counter() - started
    started = time.perf_counter()
    linked = threshold_linking(*neighbours, policy.threshold)
    linking_seconds = time.perf_counter() - started
    sample = slice(0, 5000)  # pairwise scores hold n^2 booleans
    ours = pairwise_scores(labels[sample], truth[sample])
    theirs = pairwise_scores(linked[sample], truth[sample])
    result.tables.append(
        Table(
            f"Clustering time, {count:,} synthetic 256-d faces (people of 8)",
            ["method", "k-NN seconds (shared)", "grouping seconds", "F1 (first 5,000 faces)"],
            [
                ["density rule", fmt(knn_seconds, 1), fmt(rule_seconds, 1), fmt(ours["f1"], 3)],
                ["threshold linking", fmt(knn_seconds, 1), fmt(linking_seconds, 1), fmt(theirs["f1"], 3)],
            ],
        )
    )
    result.numbers[f"cluster_seconds_{count}"] = knn_seconds + rule_seconds


def run(options: Options) -> list[SectionResult]:
    result = quality(options)
    scale(options, result)
    return [result]
