"""Converts PyTorch checkpoints to Strata's safetensors weights (run with Debian's python3-torch, once per file).

    /usr/bin/python3 tools/convert_checkpoint.py semseg  train_epoch_50.pth  pspnet50_voc.safetensors
    /usr/bin/python3 tools/convert_checkpoint.py initmodel resnet50_v2.pth   resnet50_deep.safetensors
    /usr/bin/python3 tools/convert_checkpoint.py torchvision resnet50-0676ba61.pth resnet50_tv.safetensors

semseg      a PSPNet checkpoint of hszhao/semseg ({'epoch', 'state_dict', 'optimizer'}, keys prefixed 'module.'):
            Strata uses semseg's names, so only the prefix goes.
initmodel   semseg's deep-stem ImageNet ResNet (initmodel/resnet50_v2.pth): conv1/bn1/conv2/bn2/conv3/bn3 become
            layer0.{0,1,3,4,6,7}; fc is dropped. Load with weights=... (the heads keep their initialisation).
torchvision a torchvision ResNet: conv1/bn1 become layer0.{0,1} of the 7x7 stem (use deep_stem=false); fc dropped.

The output holds F32 tensors and BN's num_batches_tracked as I64, with a __metadata__ note of the source.
"""
import json
import struct
import sys

import torch

STEM = {
    "initmodel": {"conv1": "layer0.0", "bn1": "layer0.1", "conv2": "layer0.3", "bn2": "layer0.4",
                  "conv3": "layer0.6", "bn3": "layer0.7"},
    "torchvision": {"conv1": "layer0.0", "bn1": "layer0.1"},
}


def convert(kind, state):
    out = {}
    for name, t in state.items():
        if name.startswith("module."):
            name = name[len("module."):]
        if kind in STEM:
            if name.startswith("fc."):
                continue
            head, _, rest = name.partition(".")
            name = STEM[kind].get(head, head) + "." + rest if rest else name
        if t.dtype in (torch.float16, torch.bfloat16, torch.float64):
            t = t.float()
        out[name] = t
    return out


def write_safetensors(path, tensors, metadata):
    dtypes = {torch.float32: "F32", torch.int32: "I32", torch.int64: "I64"}
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name, t in tensors.items():
        if t.dtype not in dtypes:
            sys.exit(f"{name}: dtype {t.dtype} has no Strata equivalent")
        data = t.detach().contiguous().cpu().numpy().tobytes()
        header[name] = {"dtype": dtypes[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    import os
    os.replace(path + ".tmp", path)


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("semseg", "initmodel", "torchvision"):
        sys.exit(__doc__)
    kind, src, dst = sys.argv[1:]
    ckpt = torch.load(src, map_location="cpu")
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else ckpt
    tensors = convert(kind, state)
    write_safetensors(dst, tensors, {"source": src.split("/")[-1], "converted_from": kind})
    print(f"{dst}: {len(tensors)} tensors")


if __name__ == "__main__":
    main()
