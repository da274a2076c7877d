"""The OCR pipeline: whole pages in, every line (box, text, score) out, in reading order."""
