"""facecap_lib: facial expression captioning after Exp-BLIP (Yuan, Zeng & Shan, BMVC 2023).

Importing the package has no side effects; each room is imported explicitly:

>>> from facecap_lib import lexicon
>>> lexicon.AU_BY_NUMBER[12].verb_3sg
'pulls lip corner'
"""

__version__ = "0.1.0"
