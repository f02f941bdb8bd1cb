"""What a person sees about a run: live progress, the end-of-run report, and metrics."""
