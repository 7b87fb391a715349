"""Data pipeline: building corpora. Today the built-in tiny task and n-gram decontamination;
the corpus file format itself is ``core/corpus.py``."""
