"""What we store, declared once each: the normalized frames and their tables' specs, the slice vocabulary
(SliceKey, Job, Feed), the alpha landing layout, dump-CSV profiles."""
