"""The steps of ``reproduce``, grouped by concern; ``Pipeline`` combines them."""
