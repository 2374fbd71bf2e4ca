import torch

from bench.data import caption
from bench.text_encoder import sentence_embeddings, token_states


def test_token_states_have_the_conditioning_shape():
    assert token_states(["a photo of a bag", ""]).shape == (2, 16, 384)


def test_sentence_embeddings_are_normalised_and_tell_classes_apart():
    embeddings = sentence_embeddings([caption(i) for i in range(10)])
    assert torch.allclose(embeddings.norm(dim=-1), torch.ones(10), atol=1e-5)
    similarity = embeddings @ embeddings.T
    off_diagonal = similarity - 2 * torch.eye(10)
    assert (similarity.diagonal() > off_diagonal.max(dim=1).values).all()
