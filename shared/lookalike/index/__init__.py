"""Gallery index versions: FAISS over face embeddings, their labels, and the calibration stored with them."""
