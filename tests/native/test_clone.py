"""``_backend.clone`` and ``_backend.stack``, and the copies and batches that rely on them."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import torchvox as tio
from torchvox._backend import clone, stack

# Large enough for the native copy (>= 4 MiB as float32), small enough to be quick.
LARGE = (2, 64, 96, 90)


@pytest.mark.parametrize(
    "dtype",
    [
        torch.float32,
        torch.float64,
        torch.uint8,
        torch.int16,
        torch.int32,
        torch.int64,
        torch.int8,
        torch.bool,
        torch.float16,
        torch.bfloat16,
    ],
)
@pytest.mark.parametrize("shape", [LARGE, (1, 5, 4, 3), (7,)])
def test_clone_is_an_equal_independent_copy(dtype: torch.dtype, shape: tuple[int, ...]) -> None:
    generator = torch.Generator().manual_seed(0)
    tensor = (torch.rand(shape, generator=generator) * 100).to(dtype)
    copied = clone(tensor)
    assert copied.dtype == dtype
    assert copied.shape == tensor.shape
    assert copied.is_contiguous()
    assert torch.equal(copied, tensor)
    assert copied.untyped_storage().data_ptr() != tensor.untyped_storage().data_ptr()
    # Writing to the copy leaves the original alone.
    before = tensor.clone()
    copied.view(-1)[0] = copied.view(-1)[1] if copied.numel() > 1 else 0
    copied.view(-1)[-1] = 0
    assert torch.equal(tensor, before)


def test_clone_of_a_non_contiguous_view_is_contiguous() -> None:
    base = torch.arange(2 * 64 * 96 * 90, dtype=torch.float32).reshape(LARGE)
    view = base.permute(0, 3, 2, 1)[:, ::2]
    copied = clone(view)
    assert copied.is_contiguous()
    assert torch.equal(copied, view)


def test_clone_keeps_autograd() -> None:
    tensor = torch.rand(1, 4, 4, 4, requires_grad=True)
    copied = clone(tensor)
    copied.sum().backward()
    assert tensor.grad is not None
    assert torch.equal(tensor.grad, torch.ones_like(tensor))


def test_deepcopy_of_a_subject_copies_voxels_and_metadata() -> None:
    t1 = tio.ScalarImage(tensor=torch.rand(LARGE), affine=np.diag([2.0, 3.0, 4.0, 1.0]))
    t1["note"] = {"scanner": ["A"]}
    seg = tio.LabelMap(tensor=torch.randint(0, 3, LARGE, dtype=torch.uint8))
    subject = tio.Subject(t1=t1, seg=seg, age=40)
    copied = copy.deepcopy(subject)
    for name in ("t1", "seg"):
        original, duplicate = subject[name], copied[name]
        assert type(duplicate) is type(original)
        assert torch.equal(duplicate.data, original.data)
        assert duplicate.data.data_ptr() != original.data.data_ptr()
        np.testing.assert_array_equal(duplicate.affine, original.affine)
        assert duplicate.affine is not original.affine
    assert copied.t1["note"] == {"scanner": ["A"]}
    assert copied.t1["note"] is not t1["note"]
    assert copied["age"] == 40
    copied.t1.data[0, 0, 0, 0] = -1.0
    assert subject.t1.data[0, 0, 0, 0] >= 0


def test_deepcopy_keeps_a_tensor_the_memo_already_holds() -> None:
    image = tio.ScalarImage(tensor=torch.rand(1, 3, 3, 3))
    memo = {id(image.data): image.data}
    copied = copy.deepcopy(image, memo)
    assert copied.data is image.data


def test_deepcopy_of_an_unloaded_image_stays_lazy(tmp_path) -> None:
    path = tmp_path / "image.nii.gz"
    tio.ScalarImage(tensor=torch.rand(1, 4, 5, 6)).save(path)
    image = tio.ScalarImage(path)
    copied = copy.deepcopy(image)
    assert not copied._loaded
    assert torch.equal(copied.data, tio.ScalarImage(path).data)


@pytest.mark.parametrize(
    "dtype", [torch.float32, torch.int64, torch.uint8, torch.bool, torch.bfloat16]
)
def test_stack_equals_torch_stack(dtype: torch.dtype) -> None:
    generator = torch.Generator().manual_seed(1)
    tensors = [(torch.rand(1, 40, 50, 60, generator=generator) * 9).to(dtype) for _ in range(3)]
    tensors.append(tensors[0].permute(0, 1, 2, 3)[..., :60])  # a view of another tensor
    stacked = stack(tensors)
    expected = torch.stack(tensors)
    assert stacked.dtype == dtype
    assert torch.equal(stacked, expected)
    for tensor in tensors:
        assert stacked.untyped_storage().data_ptr() != tensor.untyped_storage().data_ptr()


def test_stack_of_mismatched_or_grad_tensors_behaves_like_torch() -> None:
    with pytest.raises(RuntimeError):
        stack([torch.zeros(2, 3), torch.zeros(3, 2)])
    leaf = torch.rand(2, 3, requires_grad=True)
    stack([leaf, leaf * 2]).sum().backward()
    assert torch.equal(leaf.grad, torch.full((2, 3), 3.0))


def test_loader_batches_equal_torch_stack() -> None:
    subjects = [
        tio.Subject(t1=tio.ScalarImage(tensor=torch.full((1, 4, 5, 6), float(n)))) for n in range(5)
    ]
    loader = tio.SubjectsLoader(tio.SubjectsDataset(subjects), batch_size=2)
    batches = [batch["t1"][tio.DATA] for batch in loader]
    assert [tuple(b.shape) for b in batches] == [(2, 1, 4, 5, 6), (2, 1, 4, 5, 6), (1, 1, 4, 5, 6)]
    torch.testing.assert_close(batches[1], torch.stack([s.t1.data for s in subjects[2:4]]))
