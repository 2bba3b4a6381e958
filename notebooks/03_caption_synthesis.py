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
# # Caption synthesis: from labels to training text
#
# ## Overview
# Datasets label faces with AU codes or emotion names, never with sentences. Stage 1 of Exp-BLIP
# turns labels into text, and stage 3 fuses the two aspects into explanatory captions. This chapter:
#
# 1. Writes rule-based captions
# 2. Shows the prompts a language model sees
# 3. Chooses a describer: a language model if one is configured, else the offline describer
# 4. Captions the curated SynthFACS faces, and checks what comes back
# 5. Compares captions by length and vocabulary
# 6. Builds the Mix, Cat and Exp training sets, side by side
# 7. Prices the paper's full job, and shows how to switch to a real endpoint
#
# ## Prerequisites
#
# | Concept | Importance | Notes |
# |---|---|---|
# | {doc}`01_au_lexicon` | Necessary | verb forms, emotion names, the no-AU text |
# | {doc}`02_data_curation` | Necessary | the curated face table this chapter captions |
#
# **Compute budget:** seconds with the offline describer; with a language model, one call per
# AU-labelled image plus one per training image (cached: a re-run pays nothing).

# %%
import logging

import matplotlib.pyplot as plt
import pandas as pd

from facecap_lib import viz
from facecap_lib.captions import corpus, offline, prompts, rules, stats
from facecap_lib.captions.synthesize import default_describer
from facecap_lib.captions.validate import check_au_caption
from facecap_lib.data import default_corpus
from facecap_lib.paths import cache_root

# %% tags=["parameters"]
SMOKE = False  # the smoke corpus of chapter 2 instead of the full one
SEED = 0
N_EXAMPLES = 6  # images shown side by side

# %%
logging.basicConfig(format="%(name)s: %(message)s")  # quiet by default (no per-request HTTP logs)
logging.getLogger("facecap").setLevel(logging.INFO)
spec = default_corpus.DefaultCorpus.smoke() if SMOKE else default_corpus.DefaultCorpus.full()
faces = default_corpus.curated_faces(spec, progress=False)
pd.set_option("display.max_colwidth", 140)

# %% [markdown]
# ## 1. Rule-based captions
#
# The paper's rules are short and exact. An AU caption strings the third-person verb forms of the
# present AUs after *"It is a people who"* (the paper's wording); a face with no AU gets no rule
# caption. An emotion caption is *"The face shows ..."*, with multi-label and compound labels merged.

# %%
examples = {
    "AU10+14+17+24": rules.au_caption({10, 14, 17, 24}),
    "AU1+2+5+26": rules.au_caption({1, 2, 5, 26}),
    "happiness": rules.emotion_caption(["happiness"]),
    "happily surprised": rules.emotion_caption(["happiness", "surprise"]),
}
pd.Series(examples, name="rule-based caption").to_frame()

# %%
assert rules.au_caption(set()) is None
assert examples["happily surprised"] == "The face shows happiness and surprise."

# %% [markdown]
# ## 2. The prompts as the model sees them
#
# For AU captions the paper asks GPT-3.5 with a *one-shot* prompt: the 27 AUs with their FACS
# names, a role, one worked example, then the question for this face. The two restrictions (no
# emotion, no "AU") are the point: an answer that breaks them is a defect, and this project checks
# every answer for them. Faces with no AU get the paper's fixed description instead of a call.

# %%
print(prompts.au_prompt({6, 12, 25}))

# %% [markdown]
# Fusion is *zero-shot*: the AU sentence and the emotion sentence of an image, and the instruction
# to say how each emotion is inferred from the facial actions (paper Fig. 4):

# %%
print(prompts.fusion_prompt(rules.au_caption({6, 12, 25}), rules.emotion_caption(["happiness"])))

# %% [markdown]
# ## 3. Which describer writes the captions
#
# `default_describer` uses a language model when the environment names one (`FACECAP_LLM_MODEL`,
# plus `OPENAI_BASE_URL` and `OPENAI_API_KEY` for the endpoint). Otherwise it falls back to the
# **offline describer**: a deterministic generator that writes the same content in varied words,
# from per-AU appearance phrases and sentence frames, and links each emotion to the AUs of its
# prototypes. Its captions are labelled `generator="offline"` everywhere: they are not LLM text.

# %%
describer = default_describer(cache_root() / "llm" / "answers.sqlite", progress=False)
print(
    f"describer: {type(describer).__name__} (generator={describer.generator!r}, source={describer.source!r})"
)

# %%
for key in range(3):
    print(offline.describe_aus({1, 2, 5, 26}, key=key))
print(offline.fuse({1, 2, 5, 12, 26}, ["happiness", "surprise"], key=0))

# %% [markdown]
# ## 4. Captioning the curated faces
#
# `corpus.caption_corpus` captions every image of the curated table from chapter 2, builds the three
# training sets, and saves everything in the work folder (the next chapter reads it from there).
# The caption table has one row per caption, with its kind, who wrote it, and the rule checks it
# fails.

# %%
tables = corpus.caption_corpus(faces, describer)
captions = tables["captions"]
captions.groupby(["kind", "generator"]).size().rename("captions").to_frame()

# %%
captions.sample(6, random_state=SEED)[["dataset", "kind", "generator", "caption"]]

# %%
flagged = captions[captions["problems"].map(len) > 0]
print(f"{len(flagged)} of {len(captions)} captions break a rule")
described = captions[captions["generator"] == describer.generator]["caption"]
assert flagged["image_id"].isin(captions["image_id"]).all()
if describer.generator == "offline":  # the offline describer never breaks the rules
    assert flagged.empty and all(check_au_caption(text) == [] for text in described)

# %% [markdown]
# ## 5. Length and vocabulary
#
# Rule-based captions are short and use a closed vocabulary; described captions are longer and
# varied; fused captions are the longest. (With a real LLM the described captions vary far more
# than the offline describer's.)

# %%
all_captions = pd.concat([captions, tables["cat"], tables["exp"]], ignore_index=True)
stats.caption_statistics(all_captions)

# %%
fig = viz.caption_lengths(all_captions)

# %% [markdown]
# ## 6. Mix, Cat and Exp side by side
#
# Stage 3 needs both aspects for every training image. The missing one comes from a
# *pseudo-captioner*: in the paper, AU-BLIP captions the emotion-labelled images and Emot-BLIP the
# AU-labelled ones. Those models are trained in the next chapter; here a stand-in built from the
# labels and the prototypes fills the gap (its name is in the `source` column). **Mix** keeps each
# image's own caption, **Cat** concatenates the AU and emotion sentences, **Exp** fuses them.

# %%
sample_ids = tables["exp"]["image_id"].drop_duplicates().sample(N_EXAMPLES, random_state=SEED)
side = pd.DataFrame(
    {
        name: tables[name].groupby("image_id")["caption"].first().reindex(sample_ids)
        for name in corpus.STRATEGIES
    }
)
side.set_axis([i.split("/")[0] for i in side.index])  # dataset as the row label

# %%
exp = tables["exp"]
failing = exp[exp["problems"].map(len) > 0]
print(f"{len(failing)} of {len(exp)} fused captions fail their checks")
assert set(exp["image_id"]) <= set(captions["image_id"]) and (exp["split"] == "train").all()
assert describer.generator != "offline" or failing.empty

# %% [markdown]
# ## 7. What the paper's job would cost, and switching to a real endpoint
#
# The paper made about 72,000 one-shot AU calls and 372,000 fusion calls to GPT-3.5. At current
# list prices (a table you can override), with this project's prompts:

# %%
cost = stats.paper_job_cost()
print(f"tokens per prompt: {cost.attrs['tokens']}")
cost

# %% [markdown]
# To caption with a real model, set the environment before running this chapter (the key is read
# from the environment and never written to logs, caches or this notebook):
#
# ```bash
# export FACECAP_LLM_MODEL=gpt-4o-mini OPENAI_API_KEY=...          # OpenAI
# export FACECAP_LLM_MODEL=Qwen/Qwen2.5-7B-Instruct OPENAI_BASE_URL=http://localhost:8000/v1   # vLLM
# export FACECAP_LLM_MODEL=llama3.1 OPENAI_BASE_URL=http://localhost:11434/v1                  # Ollama
# ```
#
# Answers are cached by request content in `$FACECAP_CACHE/llm/answers.sqlite`, so an interrupted
# job resumes without paying twice; `LLMClient.estimate` prices a job before it starts, and
# `EndpointConfig(max_calls=..., max_cost=...)` stops it at a budget.
#
# The training sets are saved as LAVIS caption JSON (the authors' configs read it) and as Parquet
# with every image's reference captions:

# %%
folder = corpus.corpus_dir(faces, describer, None)
sorted(p.name for p in folder.iterdir())

# %%
assert (folder / "exp_lavis.json").exists() and (folder / "exp_images.parquet").exists()
plt.close("all")

# %% [markdown]
# ## Summary
#
# - Rule-based captions follow the paper word for word; the one-shot and fusion prompts are the
#   paper's, and every answer is checked against the paper's restrictions.
# - Without an endpoint, the offline describer writes varied captions of the same content, clearly
#   labelled; with one, the LLM client caches, retries, budgets and never leaks the key.
# - Mix, Cat and Exp training sets are built with a pluggable pseudo-captioner and exported for
#   LAVIS and for the `datasets` library.
#
# ## What's next
# The next chapter trains BLIP-2 captioners on these sets: AU-BLIP and Emot-BLIP first, whose
# pseudo-captions then replace the stand-in used here, and Exp-BLIP last.
