"""What an evaluation will cost, said before it starts (Opri's test set is large)."""

# Sustained multiply-add rate of the distance products, in GFLOP/s: a
# conservative 2-core CPU figure; GPUs and bigger CPUs only finish sooner.
_CPU_GFLOPS = 50.0


def estimate_evaluation_cost(num_query, num_gallery, feat_dim, memory_mb, image_count=None):
    """A one-line estimate of the evaluation's memory and compute time."""
    features_mb = (num_query + num_gallery) * feat_dim * 4 / 2**20
    dense_mb = num_query * num_gallery * 4 / 2**20
    seconds = 2.0 * num_query * num_gallery * feat_dim / (_CPU_GFLOPS * 1e9)
    images = image_count if image_count is not None else num_query + num_gallery
    return (f"evaluation of {num_query:,} queries x {num_gallery:,} gallery images ({images:,} to embed): "
            f"features {features_mb:,.0f} MB + at most {memory_mb:,} MB working set (TEST.EVAL_MEMORY_MB; "
            f"a dense distance matrix would need {dense_mb:,.0f} MB), distances about {seconds:,.0f} s on a "
            f"2-core CPU")
