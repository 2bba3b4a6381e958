# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # BLIP-2 fine-tuning: AU-BLIP, Emot-BLIP and Exp-BLIP
#
# ## Overview
# Chapter 3 turned labels into captions. This chapter trains the captioners of the paper's stages
# 2 and 3 on them, with transformers' BLIP-2 classes and the project's trainers:
#
# 1. Takes a BLIP-2 captioner apart: its parts, their sizes, the shapes a batch takes
# 2. Pre-trains the frozen language model a from-scratch preset needs, and says why it reads
#    content statements
# 3. BLIP-2 stage 1: the Q-Former learns with ITC, ITM and ITG
# 4. Stage 2 of the paper: AU-BLIP and Emot-BLIP, with loss curves and sample captions over training
# 5. Stage 3: pseudo-captions from AU-BLIP and Emot-BLIP, fusion, Mix-, Cat- and Exp-BLIP
# 6. AU-BLIP vs Emot-BLIP vs Exp-BLIP on the same faces, and whether the learning is real
# 7. How to run at paper scale with real data and weights
#
# ## Prerequisites
#
# | Concept | Importance | Notes |
# |---|---|---|
# | {doc}`02_data_curation` | Necessary | the curated faces and their subject-disjoint splits |
# | {doc}`03_caption_synthesis` | Necessary | the caption corpus this chapter trains on |
#
# **Compute budget:** on two CPU cores the `tiny` preset trains every stage in about 16 minutes
# (2026-11-26: language model 60 s, stage 1 96 s, the five captioners 134-172 s each; smoke
# mode: about a minute). On a GPU the `small` preset (224-pixel faces, 12-layer encoder and
# language model) is chosen automatically. On one H100 (2026-11-26, `benchmarks/chapter4_gpu.py`,
# before the Q-Former's Xavier initialisation of section 3) the whole training took 9 minutes
# with 8.3 GiB of peak GPU memory:
#
# | stage | steps of 64 | time | final loss |
# |---|---|---|---|
# | SynthFACS corpus | | 35 s | |
# | language model (batch 32, fp32) | 1000 | 48 s | 0.46 |
# | stage 1 (Q-Former) | 300 | 70 s | ITC 4.16 = log 64, ITM 0.64, ITG 1.49 |
# | AU-BLIP | 400 | 69 s | 0.65 |
# | Emot-BLIP | 400 | 65 s | 0.36 |
# | pseudo-captions (beam 5) | | 33 s | |
# | Mix-BLIP, Cat-BLIP, Exp-BLIP | 400 each | 73, 73, 72 s | 0.63, 0.37, 0.56 |
#
# That run's AU-BLIP scored a mean per-AU F1 of 0.20 on the held-out faces below (the CPU `tiny`
# run of the same code: 0.35, on faces drawn since with more visible AUs): a bigger encoder from
# scratch does not see more AUs in 400 steps.
# Every stage is saved in the work folder and skipped when it is already there.

# %%
import logging

import matplotlib.pyplot as plt
import pandas as pd
import torch
import transformers

from facecap_lib import viz
from facecap_lib.data.table import image_files
from facecap_lib.evaluation import report
from facecap_lib.inference import caption_faces
from facecap_lib.models import anatomy
from facecap_lib.models.captions import encode_captions
from facecap_lib.models.presets import build_model, preset
from facecap_lib.paths import shown
from facecap_lib.training import stages

# %% tags=["parameters"]
SMOKE = False  # smoke corpus and a few steps per stage
PRESET = "auto"  # "auto": small on a GPU, tiny on a CPU; or a preset name
N_FACES = 6  # faces compared side by side
N_EVAL = 400  # held-out faces scored from captions (all of them if fewer)

# %%
logging.basicConfig(format="%(name)s: %(message)s")
logging.getLogger("facecap").setLevel(logging.INFO)
transformers.utils.logging.disable_progress_bar()  # no bars for loading and saving weights
n_eval = 24 if SMOKE else N_EVAL
pd.set_option("display.max_colwidth", 160)
recipe = stages.chapter_recipe(SMOKE, PRESET)  # chapters 5 and 6 read the same run folder
tables, config = recipe.tables, recipe.config
print(f"preset {config.preset} on {recipe.device}; run folder {shown(recipe.run_dir)}")

# %% [markdown]
# ## 1. A BLIP-2 captioner, taken apart
#
# An image encoder (a ViT) turns the face into patch features. A small transformer, the
# **Q-Former**, owns a few learned **queries**; they read the patch features through
# cross-attention and come out as a fixed number of vectors. A linear **projection** maps them
# into the language model's embedding space, where they stand in front of the caption as a soft
# prompt. The **language model** (OPT) writes the caption and stays frozen: only the parts before
# it learn. Here are the parts of the chosen preset and the path of a two-image batch.

# %%
tokenizer = recipe.tokenizer()
model = build_model(preset(config.preset), tokenizer)
model.language_model.requires_grad_(False)
print(anatomy.parameter_table(model).round(3).to_string(index=False))
batch = encode_captions(
    tokenizer, list(tables["captions"]["caption"][:2]), model.config.num_query_tokens
)
size = model.config.vision_config.image_size
batch["pixel_values"] = torch.zeros(2, 3, size, size)
anatomy.shape_trace(model, batch)

# %% [markdown]
# The input ids begin with one `<image>` placeholder per query; the model overwrites those
# positions with the projected query outputs, so the language model sees
# *[queries] `</s>` caption `</s>`* and is trained to write the caption after them.
#
# ## 2. A language model to freeze
#
# BLIP-2 freezes a language model that already knows its language and already lets what it has
# read shape what it writes. Offline there are no OPT weights, so the from-scratch presets
# pre-train their own OPT on the task's whole language: every caption of chapter 3 (rule-based,
# described, fused). Trained on captions alone it would learn to write captions but not to
# *read* anything before them, and no soft prompt could steer it. So it also reads every caption
# after a short statement of its content, derived from the caption itself
# (`stages.content_statement`), which is the ability BLIP-2 borrows from a real LLM. The
# statements carry no labels the captions do not, and the Q-Former must still find the content
# in the pixels.

# %%
print(stages.content_statement(tables["captions"]["caption"].iloc[0]))
language_model = recipe.language_model()
print(
    f"language model: {sum(p.numel() for p in language_model.parameters()) / 1e6:.2f} M parameters"
)

# %% [markdown]
# ## 3. BLIP-2 stage 1: the Q-Former learns what captions talk about
#
# With the image encoder frozen, the Q-Former trains on three losses at once (see
# `facecap_lib.training.stage1`): **ITC** aligns the best-matching query with the caption,
# contrasting against the whole batch; **ITM** classifies image-caption pairs as matching or not,
# on hard negatives picked by ITC similarity; **ITG** makes the queries carry enough to generate
# the caption, with a mask that lets caption tokens see the queries and their own past only.
#
# **Starting from scratch.** BLIP-2 starts its Q-Former from BERT-base. Ours has no such weights,
# and transformers' initialisation, N(0, 0.02), is sized for BERT-base's width of 768: in the
# `tiny` preset's 128-wide Q-Former each block then adds about 5% to the LayerNorm-ed queries,
# so every face comes out the same (cosine 1.000 between the query outputs of different faces).
# ITC then has nothing to contrast and stays at log(batch); AU-BLIP, trained from there, wrote 14
# distinct captions for 400 held-out faces (mean per-AU F1 0.35). The from-scratch presets start
# the Q-Former's linear layers with Xavier initialisation instead (`presets.init_qformer`). Then
# the soft prompt varies with the face (a quarter to a third of its variance is across faces,
# against a tenth before) and AU-BLIP writes 35 to 50 distinct captions for the same 400 faces;
# its F1 moved less than the spread between runs: 0.36 to 0.45 over three runs with different
# seeds (2026-11-26). Seeing the face is necessary, not sufficient. Stage 1 on a frozen
# encoder with random weights remains hard: the curves below show how far ITC gets from
# log(batch) in this run. The paper's encoders come pre-trained (MAE or EVA-CLIP), which is what
# makes their stage 1 informative.

# %%
qformer = recipe.qformer()
fig = viz.loss_curves({"stage 1": qformer.history}, keys=("itc", "itm", "itg"))
fig.axes[0].set_title("BLIP-2 stage 1 losses")
plt.show()

# %% [markdown]
# ## 4. AU-BLIP and Emot-BLIP
#
# Each captioner starts from the stage-1 Q-Former and trains the image encoder (layer-wise
# learning-rate decay 0.95), the Q-Former and the projection on one aspect's captions, with AdamW,
# warm-up and cosine decay. Every few hundred steps it captions a few held-out faces; the
# samples are kept in the run's history.

# %%
au_blip = recipe.captioner("au")
emot_blip = recipe.captioner("emot")
fig = viz.loss_curves({"AU-BLIP": au_blip.history, "Emot-BLIP": emot_blip.history})
fig.axes[0].set_title("Stage-2 caption loss")
plt.show()


# %%
def samples_over_training(result, name):
    rows = [h for h in result.history if "samples" in h]
    return pd.DataFrame(
        {f"step {h['step']}": h["samples"] for h in rows},
        index=[f"{name} face {i + 1}" for i in range(len(rows[0]["samples"]))] if rows else None,
    ).T


samples_over_training(au_blip, "AU-BLIP")

# %% [markdown]
# ## 5. Stage 3: pseudo-captions, fusion, Mix-, Cat- and Exp-BLIP
#
# Each training image has one aspect labelled. AU-BLIP now describes the facial actions of the
# emotion-labelled images and Emot-BLIP names the emotion of the AU-labelled ones; chapter 3's
# fusion turns the pairs into Mix, Cat and Exp training sets (its stand-in pseudo-captioner is
# replaced by the two models), and three more captioners train on them.

# %%
fused = recipe.fused_tables()
exp_rows = fused["exp"]
print(
    exp_rows["source"]
    .str.replace(r"model-[0-9a-f]+", "model", regex=True)
    .value_counts()
    .to_string()
)
exp_rows[["image_id", "caption", "source"]].head(4)

# %%
results = {"au": au_blip, "emot": emot_blip}
for name in ("mix", "cat", "exp"):
    results[name] = recipe.captioner(name)
fig = viz.loss_curves({stages.CAPTIONERS[n]: r.history for n, r in results.items()})
fig.axes[0].set_title("Caption loss of the five captioners")
plt.show()
recipe.summary()

# %% [markdown]
# ## 6. The captioners side by side, and whether the learning is real
#
# The same held-out faces (new people, never seen in training), captioned by AU-BLIP, Emot-BLIP
# and Exp-BLIP with beam search (5 beams, the paper's setting).

# %%
shown = pd.concat(  # new people, never seen in training: half AU-labelled, half emotion-labelled
    [
        report.held_out(recipe, N_FACES // 2, kind="au"),
        report.held_out(recipe, N_FACES - N_FACES // 2, kind="emotion"),
    ]
)
files = image_files(shown)
side_by_side = pd.DataFrame(index=[f"face {i + 1}" for i in range(len(shown))])
for name in ("au", "emot", "exp"):
    side_by_side[stages.CAPTIONERS[name]] = caption_faces(
        shown, results[name].final, device=recipe.device
    )
fig = viz.contact_sheet(files, [f"face {i + 1}" for i in range(len(files))], columns=N_FACES)
plt.show()
side_by_side

# %% [markdown]
# **Learning, measured.** SynthFACS knows every label, so a caption can be scored: which AUs does
# it mention (read by the same parser chapter 3 uses), against the labels of that face? Chance is
# what a captioner that ignores the image would get: it writes the same captions whatever the
# face. The target for the `tiny` preset is a mean per-AU F1 of at least 0.6; Exp-BLIP should name
# the labelled emotion of most emotion-labelled faces. For scale: the same encoder trained
# directly on the AU labels of the same ~2,000 training faces (3,000 steps, three times the
# captioner's) reaches a mean F1 of about 0.60 on these faces, ROC-AUC 0.86
# (`benchmarks/caption_ceiling.py`); a captioner learns the AUs only through its captions and a
# frozen language model. Trained directly on the emotion labels of the training faces, the same
# encoder names the right emotion for 44% of the emotion-labelled faces below
# (`caption_ceiling.py --task emotion`).

# %%
frequent = report.au_caption_f1(recipe, results["au"].final, n_eval)  # AUs with >= 10 positives
print(
    f"AU-BLIP on {frequent.attrs['faces']} held-out faces: mean F1 over {len(frequent)} AUs with >= 10 positives = {frequent['f1'].mean():.3f}"
)
fig = viz.f1_bars(
    {"AU-BLIP": frequent}, title="Per-AU F1 of AU-BLIP's captions (held-out subjects)"
)
plt.show()

# %%
named = report.emotion_naming(recipe, results["exp"].final, n_eval)
single = named["single"]  # one emotion: its prototype's AUs
print(
    f"Exp-BLIP names the labelled emotion(s) of {named['hit'].mean():.1%} of {len(named)} held-out emotion-labelled faces; "
    f"{named.loc[single, 'hit'].mean():.1%} of the {single.sum()} with one emotion, "
    f"{named.loc[~single, 'hit'].mean():.1%} of the {(~single).sum()} with a compound"
)
named.groupby("labels")["hit"].agg(["mean", "size"]).sort_values("size", ascending=False).head(10)

# %% [markdown]
# ## 7. At paper scale, with real data and weights
#
# Nothing above is specific to the tiny preset. With licensed datasets and pre-trained weights:
#
# - **Data**: point chapter 2 at the real folders (`curated_faces(real={"bp4d": "/data/BP4D", ...})`)
#   and chapter 3 at an LLM endpoint (`FACECAP_LLM_MODEL`, `OPENAI_BASE_URL`).
# - **Weights**: `RecipeConfig(preset="vitg-opt2.7b", captioner=CaptionerConfig(init="Salesforce/blip2-opt-2.7b"))`
#   starts from BLIP-2's weights and tokenizer (no language-model pre-training and no stage 1:
#   the checkpoint brings both); `CaptionerConfig(lavis_checkpoint="au_blip.pth")` loads the
#   authors' LAVIS checkpoints over them and reports what it loaded.
# - **Hyper-parameters**: the paper fine-tunes with peak lr 1e-5, batch 32, warm-up 1000 steps,
#   20 epochs (supplementary Table 12): `FitConfig()`'s defaults; `QFormerConfig()` holds the
#   stage-1 values. Every stage trains through one loop, `training.fit.fit`, with one task object
#   per stage, so all of this holds for each of them.
# - **Several GPUs**: the same command under torchrun or accelerate runs data-parallel (DDP):
#   `torchrun --nproc-per-node 8 -m facecap_lib.cli train au --preset vitg-opt2.7b --init Salesforce/blip2-opt-2.7b`.
#   The batch size is global; only rank 0 writes checkpoints.
# - **Resuming**: kill any stage and run it again: it continues from its last checkpoint with the
#   same data order, optimizer state and random state.
# - **Speed**: on a GPU the trainer uses bf16 autocast and the fused AdamW, and reads its losses
#   one step late; `FitConfig(compile=True)` compiles each transformer block. At the
#   vitg-opt2.7b shape one H100 trains about 100 images/s at batch 32 (127 at batch 48, compiled).
#   Captioning (`describe`, `facecap describe`) loads bf16 weights, batches 128 images and keeps a
#   beam-search cache that moves less memory: about 62 captions/s at beam 5 and batch 256. The
#   figures, what bounds them and the commands are in {doc}`../performance`.

# %% [markdown]
# ## Summary
#
# - A BLIP-2 captioner is an image encoder, a Q-Former with learned queries, a projection and a
#   frozen language model; only the first three learn.
# - A from-scratch language model must learn to read a context, not just to write captions,
#   before a soft prompt can steer it.
# - Stage 1 trains the Q-Former with ITC, ITM and ITG; the captioners then fine-tune from it.
# - Stage 3 replaces chapter 3's stand-in with AU-BLIP and Emot-BLIP as pseudo-captioners.
# - Scoring captions against SynthFACS labels tells whether a captioner looks at the face.
