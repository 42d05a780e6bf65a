"""A-share minute-bar CSV drops -> stock_1min_qfq: the loader, the landing workflow, transforms, daily
bars."""
