# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The AU lexicon: the words a face is described with
#
# ## Overview
# Exp-BLIP describes faces in two vocabularies: *facial actions* (FACS Action Units) and
# *emotions*. Every caption, prompt, loader and metric in this book draws its words from one module,
# `facecap_lib.lexicon`. This chapter tours it:
#
# 1. What FACS and Action Units are
# 2. The 27 AUs of the paper, by face region
# 3. Emotions and the codes datasets use for them
# 4. Emotion prototypes: which AUs make which emotion
# 5. Parsing the AU codes datasets write
# 6. A rule-based AU sentence, by hand
#
# ## Prerequisites
#
# | Concept | Importance | Notes |
# |---|---|---|
# | Python, pandas | Necessary | tables of AUs and emotions |
# | Facial anatomy | Helpful | the AU names refer to brows, lids, lips, jaw |
#
# **Compute budget:** seconds on a laptop CPU; no data, no GPU.

# %%
import matplotlib.pyplot as plt
import pandas as pd

from facecap_lib import lexicon, viz
from facecap_lib.captions import rules

# %% tags=["parameters"]
SMOKE = False  # this chapter is cheap: smoke and full runs are identical

# %% [markdown]
# ## 1. What FACS and Action Units are
#
# The **Facial Action Coding System** (FACS; {cite:p}`ekman1978facs`, revised in
# {cite:p}`ekman2002facs`) breaks any visible facial movement into *Action Units*: the smallest
# movements that a trained coder can tell apart, each produced by one muscle or a group of muscles.
# AU12, *lip corner puller*, is the zygomatic major pulling the mouth corners up and back; AU6,
# *cheek raiser*, the orbicularis oculi lifting the cheeks and crinkling the eye corners. A smile
# of enjoyment is AU6 + AU12.
#
# AUs describe *what the face does*, not *what the person feels*. That is what makes them a good
# intermediate language: an emotion label says "happiness", an AU description says why a viewer
# would think so. Coders also grade intensity from A (trace) to E (maximum), and may mark an
# action as one-sided (`L12`, `R12`) or limited to the top or bottom lip (`T24`, `B22`). Exp-BLIP
# keeps only occurrence: an AU is present or not.
#
# ## 2. The 27 AUs of the paper, by face region
#
# The paper's supplementary Table 1 lists 27 AUs, each with its FACS *noun form* (used in the GPT
# prompt) and a *verb form* the authors wrote for rule-based captions. Captions need the verb in
# the third person ("raise cheek" → "raises cheek"); the lexicon derives it by the rule the paper
# states: append *s* or *es* to the first word. `region` tells where the action shows, which the
# failure analysis later uses to reason about occlusions.

# %%
aus = lexicon.au_table()
aus

# %%
by_region = aus.groupby("region").size().reindex(list(lexicon.REGIONS))
by_region

# %%
assert len(aus) == 27 and list(aus.index) == list(lexicon.AU_NUMBERS)
assert by_region.to_dict() == {"upper": 7, "lower": 19, "other": 1}
assert lexicon.au(24).verb_3sg == "presses lips" and lexicon.au(27).verb_3sg == "stretches mouth"

# %% [markdown]
# ## 3. Emotions and the codes datasets use for them
#
# Emotion-labelled datasets name the same emotions in different words and numbers: AffectNet writes
# `1` for happiness, RAF-DB's basic subset writes `4`, and RAF-DB's compound subset writes `1` for
# *happily surprised*. The lexicon fixes one canonical name per emotion and decodes every dataset's
# codes into it. Compound labels become their two constituent emotions, which is how the paper
# captions them ("The face shows happiness and surprise."). AffectNet's codes 8-10 (*none*,
# *uncertain*, *no-face*) decode to "no emotion label", which is not the same as *neutral*.

# %%
codes = pd.DataFrame(
    {
        "AffectNet": {code: lexicon.affectnet_emotion(code) for code in range(11)},
        "RAF-DB basic": {code: lexicon.rafdb_basic_emotion(code) for code in range(1, 8)},
        "RAF-DB compound": {
            code: " + ".join(lexicon.rafdb_compound_emotions(code)) for code in range(1, 12)
        },
    }
).rename_axis("code")
codes.fillna("–")

# %%
assert set(codes["AffectNet"].dropna()) == set(lexicon.EMOTION_NAMES)
assert set(codes["RAF-DB basic"].dropna()) == set(lexicon.EMOTION_NAMES) - {"contempt"}
assert rules.emotion_caption(lexicon.rafdb_compound_emotions(1)) == (
    "The face shows happiness and surprise."
)

# %% [markdown]
# ## 4. Emotion prototypes: which AUs make which emotion
#
# Psychologists have tabulated the AUs that typically express each emotion. The lexicon keeps two
# such tables as data, each with its source: the EMFACS-style prototypes of the basic emotions
# {cite:p}`friesen1983emfacs`, and the prototypes of Du, Tao & Martinez {cite:p}`du2014compound`,
# who photographed 230 people posing 6 basic and 15 *compound* emotions (*happily surprised*,
# *sadly angry*, ...) and FACS-coded them. Dark cells are AUs most people used; light cells are
# AUs only some added.

# %%
basic = lexicon.prototype_matrix(lexicon.BASIC_PROTOTYPES)
fig = viz.prototype_heatmap(basic, title="Basic emotions (EMFACS)")

# %%
compound = lexicon.prototype_matrix(lexicon.COMPOUND_PROTOTYPES)
fig = viz.prototype_heatmap(compound, title="Basic and compound emotions (Du et al. 2014)")

# %% [markdown]
# Two things stand out. Compound prototypes largely *combine* their parts: *happily surprised*
# keeps surprise's raised brows (AU1, AU2) and adds happiness's lip corner puller (AU12). And the
# two sources disagree in places (EMFACS's disgust is 9 + 15 + 16, Du et al.'s is 9 + 10 + 17), a
# reminder that "the AUs of an emotion" is a tendency, not a rule: exactly the kind of link
# Exp-BLIP's captions are meant to spell out.

# %%
happily_surprised = compound["happily surprised"]
shared = {au for au in basic.index if happily_surprised[au] == 1 and compound["surprise"][au] == 1}
assert {"AU1", "AU2"} <= shared and happily_surprised["AU12"] == 1
assert sorted(basic.columns) == sorted(set(lexicon.EMOTION_NAMES) - {"neutral"})
plt.close("all")

# %% [markdown]
# ## 5. Parsing the AU codes datasets write
#
# Datasets write AU labels in many ways. RAF-AU alone has `1+2+25`, side and lip prefixes
# (`L12`, `17+B22+T24`), the action-descriptor form `AD19`, repeated AUs (`26+26`), a stray side
# letter (`L12L`), stray spaces and `null`. `parse_au_codes` reads all of these into a set of AU
# numbers, dropping side prefixes and intensity letters, as the paper does.

# %%
examples = ["AU12", " 1+2+5B+26 ", "L12+R14", "17+B22+T24", "t23", "26+26", "AD19", "L12L", "null"]
parsed = pd.DataFrame(
    {
        "dataset string": [repr(text) for text in examples],
        "AUs": [sorted(lexicon.parse_au_codes(text)) for text in examples],
    }
)
parsed

# %%
assert lexicon.parse_au_codes("17+B22+T24") == {17, 22, 24}
assert lexicon.parse_au_codes("26+26") == {26} and lexicon.parse_au_codes("null") == frozenset()

# %% [markdown]
# Anything the parser cannot read is an error that names the token, never a silent guess. RAF-AU
# contains AUs outside the paper's 27 (such as AU32, *bite*); a loader that wants to drop them on
# purpose, as the paper does, asks for the lenient parse and gets a count of what it dropped.

# %%
try:
    lexicon.parse_au_codes("1+32")
except ValueError as err:
    print(err)
lenient = lexicon.parse_au_tokens("1+32+L12X")
print(sorted(lenient.aus), [(s.token, s.reason) for s in lenient.skipped])
assert lenient.aus == {1} and lenient.n_skipped == 2

# %% [markdown]
# ## 6. A rule-based AU sentence, by hand
#
# The paper's rule-based generator turns an AU set into one sentence: *"It is a people who"*
# followed by the third-person verb forms, in AU order, joined by commas with *and* before the last.
# The paper's own example is AU10, AU14, AU17 and AU24. Here it is built by hand:

# %%
phrases = [lexicon.au(number).verb_3sg for number in sorted({24, 17, 10, 14})]
sentence = "It is a people who " + ", ".join(phrases[:-1]) + " and " + phrases[-1] + "."
print(sentence)

# %% [markdown]
# The sentence must match the paper word for word, and the library's generator
# (`facecap_lib.captions.rules.au_caption`), used from here on, must agree with the hand-built one.
# If anyone edits a verb form in the lexicon, this cell fails.

# %%
PAPER = "It is a people who raises upper lip, tightens lip corner, raises chin and presses lips."
assert sentence == PAPER
assert rules.au_caption({10, 14, 17, 24}) == PAPER
assert rules.au_caption(set()) is None  # no AU: no rule-based caption (the GPT path uses:)
print(lexicon.NO_AU_DESCRIPTION)

# %% [markdown]
# ## Summary
#
# - FACS describes what a face does in Action Units; Exp-BLIP uses 27 of them, each with a noun form
#   (for prompts) and a verb form (for rule-based captions).
# - One canonical emotion vocabulary decodes AffectNet's and RAF-DB's codes; compound labels are
#   kept as their two constituent emotions, and "no emotion label" is not "neutral".
# - Prototype tables link emotions to AUs, with visible disagreement between sources.
# - Dataset AU strings are parsed strictly, with a lenient mode that counts what it drops.
#
# ## What's next
# {doc}`02_data_curation` builds the data these words describe: SynthFACS, rendered faces with
# known AUs and emotions written in the real datasets' formats, and the loaders and curation rules
# of the paper.
