"""The split generation tool of Something-Else: compositional splits of SSv2 (templates in groups
1/2, nouns in sets A/B; train = 1A + 2B, validation = 1B + 2A), the shuffled control, the few-shot
split, and protocol validation. Command line: `vislearn video splits --help`.

Modules: `nouns` (noun canonicalisation), `search` (the grouping search), `compositional`,
`shuffled`, `fewshot`, `validate`, `stats`, `io` (split folders, official file names).
Imports `datasets` only to read metadata; never torch.
"""
from .compositional import Options, load_pool, make_compositional
from .nouns import build_noun_map, canonical_form


__all__ = ["Options", "load_pool", "make_compositional", "build_noun_map", "canonical_form"]
