"""A randomly initialised ICC-student-shaped model saved to a folder: a one-output
`RobertaForSequenceClassification` regression head with a byte-level BPE tokenizer trained on the
given texts. No hub access. Tests use a tiny one to exercise the `icc-student` code path; the
benchmark uses the student's real shape (6 layers, hidden 768, 12 heads) to time it on this CPU.
Its scores mean nothing: the weights are random.
"""
from __future__ import annotations

from pathlib import Path


def save_random_student(folder: Path, texts: list[str], layers: int = 2, hidden: int = 32, heads: int = 2,
                        intermediate: int = 64, vocab_size: int = 600, max_positions: int = 130,
                        init_range: float = 0.02, seed: int = 0) -> Path:
    """Write config, tokenizer and model.safetensors of a random student into `folder`.

    A wide `init_range` (tests) makes the random scores differ visibly between captions."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from tokenizers.processors import RobertaProcessing
    from transformers import (
        RobertaConfig,
        RobertaForSequenceClassification,
        RobertaTokenizerFast,
    )
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"], show_progress=False)
    bpe._tokenizer.post_processor = RobertaProcessing(("</s>", 2), ("<s>", 0))  # <s> ... </s>, as RoBERTa
    tokenizer = RobertaTokenizerFast(tokenizer_object=bpe._tokenizer, model_max_length=max_positions - 2)
    tokenizer.save_pretrained(folder)
    config = RobertaConfig(vocab_size=tokenizer.vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                           num_attention_heads=heads, intermediate_size=intermediate,
                           max_position_embeddings=max_positions, num_labels=1, problem_type="regression",
                           pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                           eos_token_id=tokenizer.eos_token_id, initializer_range=init_range)
    torch.manual_seed(seed)
    model = RobertaForSequenceClassification(config).eval()
    model.save_pretrained(folder, safe_serialization=True)
    return folder
