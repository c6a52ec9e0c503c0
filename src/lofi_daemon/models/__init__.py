"""What each backend needs from the Hugging Face hub, and getting it onto disk.

Only this package imports huggingface_hub.
"""
