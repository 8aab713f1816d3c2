"""In-house fast kernels, one module per operator."""
