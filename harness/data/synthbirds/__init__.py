"""synthbirds: a CUB-like captioned bird dataset rendered on the machine, in CUB's on-disk layout."""
