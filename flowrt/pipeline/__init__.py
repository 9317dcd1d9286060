"""One restore, one way: load, plan, restore (whole, tiled or streamed), write; batch loops over it."""
