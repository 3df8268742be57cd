"""Looking inside a TorchScript archive without loading it: ``scan_archive`` / ``require_clean`` (its code),
``read_card_json`` (the studio card inside it) and ``weights_summary`` (its parameter count and dtype).

A TorchScript archive is a program, not data: ``torch.jit.load`` compiles the TorchScript source kept as text under
``<archive>/code/**.py`` and runs parts of it before it returns (a module's ``__setstate__``, and also every default
argument value and class constant, which TorchScript evaluates while it compiles); ``forward`` runs at every step.
That code can call ``torch.from_file(path, shared=True, size=N)`` and write into the result, or
``torch.save(value, path)``: both write any file the user can write. So the archive is read here with ``zipfile``,
``ast`` and ``pickletools`` only, before ``torch.jit.load`` ever sees it:

* the zip: nothing before it, one top folder, no two entries with one name (zipfile and torch's reader could each
  pick another), no entry over a size cap or at a bomb-like ratio; declared sizes are checked before a member is
  read, and a read stops at the declared size (a stream that holds more then fails its CRC check);
* every ``code/**.py`` file is parsed with Python's ``ast``. TorchScript's syntax is a subset of Python's and its
  lexer reads strings and comments as Python does, except ``# type:`` comments, which are refused; a file that does
  not parse cannot be checked and is refused. Every name the code refers to, called or not (a builtin can be kept
  in a variable, or reached with ``getattr(torch, "from_file")``, and called later), must be an allowed tensor
  operation, one of TorchScript's own list/dict/str builtins or interpreter primitives, or a function, class,
  method or field the archive's own code defines;
* every pickle (``data.pkl``, ``constants.pkl``, debug records) may only name tensors, storages, torch's list helpers
  and classes of the archive's own code: never ``torch.classes.*`` (C++ classes whose ``__setstate__`` runs native
  code while the pickle is read).

What the allow-list leaves out is refused: ``torch.from_file``, ``torch.save``, storages and memory mapping,
``ops.<namespace>.*`` beyond ``aten`` and ``prim``, ``fork``, ``getattr`` with a computed name, and anything unknown.
Nothing here limits how much memory or time the allowed operations take once the archive is loaded.
"""

from __future__ import annotations

import ast
import functools
import io
import os
import pickletools
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass
from typing import BinaryIO

from .common import fail
from .common import weights_summary as _count_and_dtype

# --- limits (declared sizes are checked before any member is read; reads stop at the declared size) -------------
# Python's ast takes memory and time in proportion to the source: one file's cap bounds a check's memory (files
# are parsed one at a time), the total its time; both are far above the code torch writes for real networks
# (figures in docs/performance-notes.md).
MiB = 1 << 20
CODE_FILE_LIMIT = 4 * MiB             # one code/**.py file
CODE_TOTAL_LIMIT = 16 * MiB           # all code files together
# pickletools is slow per byte, and data.pkl holds only a short record per tensor (the tensor bytes are in data/,
# never read here)
PICKLE_FILE_LIMIT = 16 * MiB          # one .pkl / .debug_pkl record
PICKLE_TOTAL_LIMIT = 64 * MiB         # all pickles together
CARD_LIMIT = 1 * MiB                  # the studio_card.json extra file
CENTRAL_DIRECTORY_LIMIT = 16 * MiB    # zipfile reads the whole directory into memory when it opens the archive
ENTRY_LIMIT = 200_000                 # a network with that many tensors is far beyond what the studio runs
BOMB_RATIO = 100                      # far above what real code or weights deflate by, far below zeros
BOMB_MIN_SIZE = 1 * MiB               # below this a high ratio cannot hurt
REFUSED_LISTED = 50                   # refusals kept by name; the rest are only counted

CARD_FILE = "studio_card.json"


@dataclass(frozen=True)
class CodeScan:
    """What the check of an archive's code found. ``refused`` lists each refused reference as
    ``"<file>:<line> in <Class.function>: <name>"`` (at most ``REFUSED_LISTED`` of them; ``refused_count`` has all)."""

    ok: bool
    functions: int
    calls: int
    refused: tuple[str, ...]
    verdict: str
    files: int = 0
    refused_count: int = 0


# --- the allow-lists ---------------------------------------------------------------------------------------------
# Spellings seen in code written by torch.jit.save (torch 2.x): tensor methods and functions are both printed as
# ``torch.<aten op>(...)`` (x.shape is ``torch.size(x)``, x.T is ``torch.numpy_T(x)``, list.append is
# ``torch.append(l, v)``), other namespaces as ``ops.<ns>.<op>`` (``ops.prim.device(x)``, ``ops.prim.NumToTensor``),
# Python builtins keep their names (``int``, ``range``, ``getattr(self, "0")``), TorchScript's special forms are
# ``annotate``, ``unchecked_cast``, ``uninitialized``; functions and classes of the archive are
# ``__torch__.<module path>.<name>`` (also kept in local variables: ``_0 = __torch__...interpolate``), and module
# and class methods are called on values: ``(self)._conv_forward(...)``, ``(conv).forward(...)``, ``(_1).__init__()``.
def _names(*groups: str) -> frozenset[str]:
    return frozenset(name for group in groups for name in group.split())


_ARITHMETIC = """
    add add_ sub sub_ rsub mul mul_ div div_ true_divide floor_divide floordiv remainder fmod neg neg_ negative abs abs_
    reciprocal pow pow_ sqrt sqrt_ rsqrt square exp exp_ exp2 expm1 log log_ log2 log10 log1p sign sgn floor ceil round
    trunc frac clamp clamp_ clamp_min clamp_min_ clamp_max clamp_max_ clip clip_ lerp lerp_ addcmul addcmul_ addcdiv
    addcdiv_ hypot logaddexp xlogy maximum minimum fmax fmin heaviside nan_to_num copysign
    sin cos tan asin acos atan atan2 sinh cosh tanh tanh_ asinh acosh atanh erf erfc erfinv sigmoid sigmoid_ logit
    lgamma digamma
"""
_ACTIVATIONS = """
    relu relu_ relu6 leaky_relu leaky_relu_ gelu gelu_ silu silu_ mish mish_ elu elu_ selu selu_ celu celu_ softplus
    softsign hardswish hardswish_ hardsigmoid hardsigmoid_ hardtanh hardtanh_ prelu glu threshold threshold_
    log_sigmoid softmax log_softmax softmin
"""
_LAYERS = """
    linear bilinear matmul mm bmm baddbmm addmm addmv addbmm mv dot vdot outer einsum tensordot kron
    conv1d conv2d conv3d conv_transpose1d conv_transpose2d conv_transpose3d _convolution convolution
    batch_norm group_norm layer_norm instance_norm rms_norm norm linalg_norm linalg_vector_norm linalg_matrix_norm
    frobenius_norm renorm
    dropout dropout_ feature_dropout feature_dropout_ alpha_dropout alpha_dropout_ feature_alpha_dropout
    feature_alpha_dropout_
    avg_pool1d avg_pool2d avg_pool3d max_pool1d max_pool2d max_pool3d max_pool1d_with_indices max_pool2d_with_indices
    max_pool3d_with_indices adaptive_avg_pool1d adaptive_avg_pool2d adaptive_avg_pool3d adaptive_max_pool1d
    adaptive_max_pool2d adaptive_max_pool3d
    upsample_nearest1d upsample_nearest2d upsample_nearest3d _upsample_nearest_exact1d _upsample_nearest_exact2d
    _upsample_nearest_exact3d upsample_linear1d upsample_bilinear2d upsample_bicubic2d upsample_trilinear3d
    _upsample_bilinear2d_aa _upsample_bicubic2d_aa _upsample_lanczos2d_aa
    pixel_shuffle pixel_unshuffle pad constant_pad_nd reflection_pad1d reflection_pad2d reflection_pad3d
    replication_pad1d replication_pad2d replication_pad3d grid_sampler affine_grid_generator im2col col2im
    scaled_dot_product_attention _native_multi_head_attention _transformer_encoder_layer_fwd _nested_tensor_from_mask
    _nested_tensor_from_mask_left_aligned to_padded_tensor
    embedding embedding_bag one_hot lstm gru rnn_tanh rnn_relu lstm_cell gru_cell rnn_tanh_cell rnn_relu_cell
    cosine_similarity pairwise_distance cdist dist
"""
_SHAPES = """
    reshape view view_as expand expand_as permute transpose t numpy_T mT contiguous flatten unflatten squeeze squeeze_
    unsqueeze unsqueeze_ slice select narrow index_select gather scatter scatter_ scatter_add scatter_add_ index_add
    index_add_ index_copy index_fill index_put index_put_ masked_fill masked_fill_ masked_select masked_scatter where
    nonzero take take_along_dim chunk split split_with_sizes tensor_split unbind stack cat concat concatenate hstack
    vstack dstack flip fliplr flipud roll rot90 repeat repeat_interleave tile movedim moveaxis swapaxes swapdims tril
    triu diag diagonal diag_embed block_diag meshgrid broadcast_tensors broadcast_to unfold clone detach detach_
"""
_REDUCTIONS = """
    sum mean prod std var std_mean var_mean amax amin aminmax max min argmax argmin logsumexp cumsum cumprod cummax
    cummin all any count_nonzero median nanmedian mode quantile nanquantile nansum nanmean sort argsort topk kthvalue
    _unique2 unique_dim unique_consecutive histc bincount bucketize searchsorted diff trace trapezoid
"""
_CREATION = """
    zeros ones full empty zeros_like ones_like full_like empty_like rand rand_like randn randn_like randint randint_like
    randperm arange linspace logspace eye tensor as_tensor scalar_tensor new_zeros new_ones new_full new_empty
    bernoulli bernoulli_ multinomial normal normal_ uniform_ poisson complex polar view_as_real view_as_complex
    real imag
    zero_ fill_ copy_
"""
_TYPES = """
    to type_as cpu cuda dim size numel item element_size is_floating_point is_complex is_nonzero device
    is_autocast_enabled is_grad_enabled set_grad_enabled
    eq ne lt le gt ge equal allclose isclose isnan isinf isfinite isneginf isposinf logical_and logical_or logical_not
    logical_xor bitwise_and bitwise_or bitwise_xor bitwise_not
    fft_fft fft_ifft fft_rfft fft_irfft fft_fft2 fft_ifft2 fft_rfft2 fft_irfft2 fft_fftn fft_ifftn fft_rfftn fft_irfftn
    fft_fftshift fft_ifftshift
    stride storage_offset is_contiguous name names half float double long int bool byte char short bfloat16
    requires_grad_ retain_grad
"""
# TorchScript's own builtins on lists, dicts, strings and values, printed as torch.<name>(container, ...)
_BUILTINS = """
    __is__ __isnot__ __not__ __contains__ __and__ __or__ __xor__ __getitem__ _set_item __derive_index __range_length
    append extend insert pop remove clear reverse count index copy keys values items get setdefault update len list
    dict str format join strip lstrip rstrip lower upper replace startswith endswith find isdigit isalpha isspace
    splitlines warn sorted
"""
TORCH_OPS = _names(_ARITHMETIC, _ACTIVATIONS, _LAYERS, _SHAPES, _REDUCTIONS, _CREATION, _TYPES, _BUILTINS)

# ops.prim.<name>: interpreter primitives, none of which reaches a file (Print writes to stdout, like print)
PRIM_OPS = _names("""
    NumToTensor RaiseException device dtype layout requires_grad data type index is_cuda is_cpu is_nested is_sparse
    is_quantized is_meta is_mkldnn is_xpu is_mps is_xla is_vulkan is_ipu is_maia min max abs
    unchecked_unwrap_optional Print
""")

# names a value may be asked for: the ops above as methods, tensor properties, what container results carry
VALUE_ATTRIBUTES = TORCH_OPS | _names("""
    shape dtype device T mT H mH ndim data real imag layout requires_grad grad is_cuda is_cpu is_sparse is_quantized
    is_meta is_nested is_mkldnn values indices type index tolist __new__
""")

# bare names: Python builtins TorchScript compiles to operators, its special forms, constants and type names
BARE_NAMES = _names("""
    int float bool str complex len range enumerate zip isinstance hasattr print sorted min max abs round divmod sum all
    any list dict tuple annotate unchecked_cast uninitialized inf nan infj nanj
    Tensor List Dict Optional Tuple Union Any NoneType Final Future Await Device Module NamedTuple Interface
    ModuleInterface Enum number Scalar
""")

# the roots of dotted names; a function may not rebind them (its later uses would no longer be the checked ones)
_ROOTS = frozenset({"torch", "ops", "__torch__", "CONSTANTS"})
_RESERVED = _ROOTS | {"getattr", "fork", "annotate", "unchecked_cast", "uninitialized"}

# pickle globals torch's own reader accepts and that only build tensors, lists and devices
_PICKLE_GLOBALS = {
    "collections": {"OrderedDict"},
    "torch._utils": {"_rebuild_tensor_v2"},
    "torch.jit._pickle": {"build_intlist", "build_tensorlist", "build_doublelist", "build_boollist",
                          "restore_type_tag", "build_tensor_from_id"},
    "builtins": {"complex"},
    "torch": {"device"},
}
_STORAGE_DTYPES = {
    "FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16", "BFloat16Storage": "bfloat16",
    "LongStorage": "int64", "IntStorage": "int32", "ShortStorage": "int16", "CharStorage": "int8",
    "ByteStorage": "uint8", "BoolStorage": "bool", "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128", "ComplexHalfStorage": "complex32",
}
_CUSTOM_CLASSES = "torch.classes"   # __torch__.torch.classes.<ns>.<Class>: C++ classes registered with torch


@functools.lru_cache(maxsize=None)
def _is_operator_name(name: str) -> bool:
    """Whether TorchScript would resolve ``value.<name>`` to a builtin operator (so an archive that declares a field
    or method of that name could make a refused operator look like its own method)."""
    import torch

    try:
        return bool(torch._C._jit_get_schemas_for_operator(f"aten::{name}")
                    or torch._C._jit_get_schemas_for_operator(f"prim::{name}"))
    except Exception:  # a torch without the private lookup: judge by the public tensor methods
        return hasattr(torch.Tensor, name)


# --- the zip ----------------------------------------------------------------------------------------------------
def _directory_size(handle) -> tuple[int, int]:
    """(entries, bytes) of the zip's central directory, read from its end record before zipfile loads it whole."""
    size = handle.seek(0, os.SEEK_END)
    tail_len = min(size, 22 + 0xFFFF)
    handle.seek(size - tail_len)
    tail = handle.read(tail_len)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        raise zipfile.BadZipFile("no end-of-central-directory record")
    _, _, _, _, entries, cd_size, cd_offset, _ = struct.unpack("<4s4H2LH", tail[at:at + 22])
    directory_end = size - tail_len + at
    locator = tail[at - 20:at] if at >= 20 else b""
    if locator[:4] == b"PK\x06\x07":   # zip64 (torch always writes it): the locator points at its end record
        _, _, record_at, _ = struct.unpack("<4sLQL", locator)
        if record_at > directory_end - 20 - 56:
            raise zipfile.BadZipFile("bad zip64 locator")
        handle.seek(record_at)
        fields = struct.unpack("<4sQ2H2L4Q", handle.read(56))
        if fields[0] != b"PK\x06\x06":
            raise zipfile.BadZipFile("bad zip64 end record")
        entries, cd_size, cd_offset, directory_end = fields[7], fields[8], fields[9], record_at
    if cd_offset + cd_size != directory_end:
        # zipfile then shifts every offset to fit (data prepended to the zip); torch's reader does not, so the two
        # could read different bytes under one name
        raise zipfile.BadZipFile("the central directory is not where its end record says (data before the zip?)")
    return entries, cd_size


class _Archive:
    """An opened zip whose directory passed the checks that need no member read. ``source`` is a path or a binary
    file object (e.g. the bytes that will be loaded, so that what was checked is what runs); ``path`` names it in
    messages."""

    def __init__(self, source, path=None):
        self.path = path if path is not None else source
        self.handle, self.owned = source, False
        if not (hasattr(source, "read") and hasattr(source, "seek")):
            try:
                self.handle, self.owned = open(source, "rb"), True
            except FileNotFoundError:
                raise fail(self.path, "file not found") from None
            except OSError as exc:
                raise fail(self.path, f"cannot read the file: {exc.strerror or exc}") from None
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        self.zip = None
        try:
            entries, cd_size = _directory_size(self.handle)
        except (OSError, zipfile.BadZipFile, struct.error) as exc:
            raise fail(self.path, f"not a readable zip archive ({exc})") from None
        if cd_size > CENTRAL_DIRECTORY_LIMIT or entries > ENTRY_LIMIT:
            raise fail(self.path, f"refused: the archive's directory lists {entries} entries in {cd_size} bytes, "
                                  f"over the {ENTRY_LIMIT} entries / {CENTRAL_DIRECTORY_LIMIT // MiB} MiB this check "
                                  "reads")
        try:
            self.handle.seek(0)
            self.zip = zipfile.ZipFile(self.handle)
        except (OSError, zipfile.BadZipFile, EOFError, ValueError, NotImplementedError) as exc:
            raise fail(self.path, f"truncated or corrupted TorchScript archive ({exc})") from None
        self._check_directory()

    def _check_directory(self) -> None:
        infos = self.zip.infolist()
        if len(infos) > ENTRY_LIMIT:
            raise fail(self.path, f"refused: the archive has {len(infos)} entries, over the limit of {ENTRY_LIMIT}")
        seen = set()
        for info in infos:
            if info.filename in seen:   # zipfile keeps the last of them, torch's reader may take another
                raise fail(self.path, f"refused: the archive has more than one entry named {info.filename!r}; "
                                      "the file this check reads might not be the one torch loads")
            seen.add(info.filename)
            if info.orig_filename != info.filename or "\\" in info.filename:   # a NUL cut the name for zipfile only
                raise fail(self.path, f"refused: the archive has an entry with a malformed name "
                                      f"({info.orig_filename!r})")
        tops = {info.filename.split("/", 1)[0] for info in infos}
        if len(tops) != 1 or any("/" not in info.filename for info in infos):
            raise fail(self.path, "refused: a TorchScript archive keeps all its entries under one top folder; "
                                  f"this one has {len(tops)} ({', '.join(sorted(tops)[:3])})")
        self.top = tops.pop()
        self.infos = infos

    def close(self) -> None:
        if getattr(self, "zip", None) is not None:
            self.zip.close()   # leaves a file object it was given open
        if self.owned:
            self.handle.close()
        elif hasattr(self.handle, "seek"):
            self.handle.seek(0)   # the caller's bytes, ready for torch.jit.load

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def relative(self, info: zipfile.ZipInfo) -> str:
        """The entry's name inside the top folder, as torch names it in tracebacks: ``code/__torch__/x.py``."""
        return info.filename[len(self.top) + 1:]

    def check_unpacking(self, info: zipfile.ZipInfo) -> None:
        if info.flag_bits & 0x1:
            raise fail(self.path, f"refused: {info.filename} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise fail(self.path, f"refused: {info.filename} uses zip compression method {info.compress_type}, "
                                  "which torch does not read")
        if info.file_size > BOMB_MIN_SIZE and info.file_size > BOMB_RATIO * max(info.compress_size, 1):
            raise fail(self.path, f"refused: {info.filename} unpacks {info.file_size // max(info.compress_size, 1)}"
                                  f" times its packed size ({_size(info.file_size)} from "
                                  f"{_size(info.compress_size)}), which is how a decompression bomb looks")

    def read(self, info: zipfile.ZipInfo, limit: int, what: str) -> bytes:
        """The member's bytes, refusing a declared size over ``limit`` before reading; the read stops at the declared
        size whatever the stream holds (a stream that holds more then fails its CRC check and is refused)."""
        self.check_unpacking(info)
        if info.file_size > limit:
            raise fail(self.path, f"refused: {what} {info.filename} unpacks to {_size(info.file_size)}, over the "
                                  f"{_size(limit)} limit")
        try:
            with self.zip.open(info) as handle:
                # zipfile inflates at most what is asked for, stops at the declared size and checks the CRC there
                data = handle.read(info.file_size + 1)
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, RuntimeError, ValueError) as exc:
            raise fail(self.path, f"refused: {what} {info.filename} cannot be read ({exc})") from None
        if len(data) != info.file_size or len(data) > limit:
            raise fail(self.path, f"refused: {what} {info.filename} does not unpack to the size its header "
                                  f"declares ({info.file_size} bytes)")
        return data


def _size(n: int) -> str:
    return f"{n / MiB:.1f} MiB" if n >= MiB else f"{n} bytes"


def _is_code(relative: str) -> bool:
    return relative.startswith("code/") and relative.endswith(".py")


def _is_pickle(relative: str) -> bool:
    return relative.endswith((".pkl", ".debug_pkl"))


def _module_of(relative: str) -> str:
    """code/__torch__/torch/nn/modules/conv.py -> __torch__.torch.nn.modules.conv"""
    return relative[len("code/"):-len(".py")].replace("/", ".")


# --- the code -----------------------------------------------------------------------------------------------------
@dataclass
class _Refusal:
    file: str
    line: int
    where: str
    name: str
    called: bool

    def __str__(self) -> str:
        return f"{self.file}:{self.line} in {self.where}: {self.name}"


class _CodeCheck:
    """Collects, file by file, what the archive defines and every name its code uses; names that only the whole
    archive can settle (``__torch__.*``, attributes of values) are resolved in ``finish``."""

    def __init__(self):
        self.functions = 0
        self.calls = 0
        self.files = 0
        self.refusals: list[_Refusal] = []
        self.refused_count = 0
        self.defined: set[str] = set()        # qualified names: module.func, module.Class, module.Class.method
        self.classes: set[str] = set()
        self.members: set[str] = set()        # method and field names of every class
        self.pending_archive: dict[str, tuple] = {}     # __torch__ reference -> first (file, line, where, called)
        self.pending_members: dict[str, tuple] = {}     # attribute of a value -> first use
        self.member_declared: dict[str, tuple] = {}     # field / method name -> first declaration

    # refusals
    def refuse(self, file, line, where, name, called=False) -> None:
        self.refused_count += 1
        if len(self.refusals) < REFUSED_LISTED:
            self.refusals.append(_Refusal(file, line, where, name, called))

    # one file
    def add_file(self, relative: str, text: str, path) -> None:
        self.files += 1
        if "# type:" in text:   # TorchScript reads "# type:" comments as annotations; Python's ast skips comments
            line = text[:text.index("# type:")].count("\n") + 1
            self.refuse(relative, line, "<module>", "a '# type:' comment (TorchScript reads it as code)")
        try:
            tree = ast.parse(text, filename=relative)
        except SyntaxError as exc:
            where = f" (line {exc.lineno}: {exc.msg})" if exc.lineno else ""
            raise fail(path, f"refused: {relative} cannot be checked: it is not Python syntax{where}") from None
        except (ValueError, RecursionError, MemoryError) as exc:   # NUL bytes; nesting deeper than Python parses
            raise fail(path, f"refused: {relative} cannot be checked: Python cannot parse it "
                             f"({type(exc).__name__}: {exc})") from None
        module = _module_of(relative)
        if module == f"__torch__.{_CUSTOM_CLASSES}" or module.startswith(f"__torch__.{_CUSTOM_CLASSES}."):
            self.refuse(relative, 1, "<module>", f"code in {module}, the namespace of torch's C++ classes")
        for statement in tree.body:
            if isinstance(statement, ast.ClassDef):
                self._class(relative, module, statement)
            elif isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.defined.add(f"{module}.{statement.name}")
                self._function(relative, statement, statement.name)
            elif isinstance(statement, (ast.Import, ast.ImportFrom)):
                continue   # old archives list imports; TorchScript skips the line
            else:
                self._scope(relative, [statement], "<module>", set())

    def _class(self, relative, module, node: ast.ClassDef) -> None:
        qualified = f"{module}.{node.name}"
        self.defined.add(qualified)
        self.classes.add(qualified)
        self._scope(relative, node.bases + node.keywords + node.decorator_list, node.name, set())
        for statement in node.body:
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.defined.add(f"{qualified}.{statement.name}")
                self._declare(statement.name, relative, statement.lineno, node.name)
                self._function(relative, statement, f"{node.name}.{statement.name}")
            elif isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
                self._declare(statement.target.id, relative, statement.lineno, node.name)
                # a class constant's value is evaluated while torch.jit.load compiles the class
                self._scope(relative, [statement.annotation] + ([statement.value] if statement.value else []),
                            node.name, set())
            elif (isinstance(statement, ast.Assign) and len(statement.targets) == 1
                  and isinstance(statement.targets[0], ast.Subscript)
                  and isinstance(statement.targets[0].value, ast.Name)
                  and statement.targets[0].value.id == "__annotations__"
                  and isinstance(statement.targets[0].slice, ast.Constant)
                  and isinstance(statement.targets[0].slice.value, str)):
                # __annotations__["0"] = <type>: a field whose name is not an identifier (Sequential's children)
                self._declare(statement.targets[0].slice.value, relative, statement.lineno, node.name)
                self._scope(relative, [statement.value], node.name, set())
            elif (isinstance(statement, ast.Assign) and len(statement.targets) == 1
                  and isinstance(statement.targets[0], ast.Name)
                  and statement.targets[0].id in ("__parameters__", "__buffers__")):
                self._scope(relative, [statement.value], node.name, set())
            elif isinstance(statement, ast.Pass) or (isinstance(statement, ast.Expr)
                                                     and isinstance(statement.value, ast.Constant)):
                continue
            else:
                self.refuse(relative, statement.lineno, node.name,
                            f"a {type(statement).__name__} statement in a class body")
                self._scope(relative, [statement], node.name, set())

    def _declare(self, name, relative, line, where) -> None:
        self.members.add(name)
        self.member_declared.setdefault(name, (relative, line, where))

    def _function(self, relative, node, where) -> None:
        self.functions += 1
        local = set()
        arguments = node.args
        for arg in arguments.posonlyargs + arguments.args + arguments.kwonlyargs + [arguments.vararg, arguments.kwarg]:
            if arg is not None:
                local.add(arg.arg)
        for child in ast.walk(node):
            if isinstance(child, ast.Name) and isinstance(child.ctx, (ast.Store, ast.Del)):
                local.add(child.id)
            elif child is not node and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
                                                          ast.Lambda, ast.Import, ast.ImportFrom, ast.Global,
                                                          ast.Nonlocal)):
                self.refuse(relative, child.lineno, where, f"a nested {type(child).__name__}")
        for name in sorted(local & _RESERVED):
            self.refuse(relative, node.lineno, where, f"a local variable named {name} (it would hide the checked name)")
        # arguments' annotations and default values too: TorchScript evaluates defaults while it compiles, at load
        self._scope(relative, [node], where, local - _RESERVED)

    def _scope(self, relative, roots, where, local: set[str]) -> None:
        consumed: set[int] = set()
        callees: set[int] = set()
        for node in _walk(roots):
            if id(node) in consumed:
                continue
            if isinstance(node, ast.Call):
                self.calls += 1
                callees.add(id(node.func))
                if isinstance(node.func, ast.Name) and node.func.id == "getattr" and not _literal_getattr(node):
                    self.refuse(relative, node.lineno, where, "getattr with a computed name", True)
                    consumed.add(id(node.func))
            if isinstance(node, ast.Attribute) or (isinstance(node, ast.Call) and _literal_getattr(node)):
                root, parts, chain = _chain(node)
                consumed.update(chain)
                called = id(node) in callees
                if isinstance(root, ast.Name) and root.id not in local:
                    consumed.add(id(root))
                    self._dotted(relative, node.lineno, where, root.id, parts, called)
                else:
                    for part in parts:
                        if part not in VALUE_ATTRIBUTES:
                            self.pending_members.setdefault(part, (relative, node.lineno, where, called))
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                if node.id not in local and node.id not in BARE_NAMES:
                    self.refuse(relative, node.lineno, where, node.id, id(node) in callees)

    def _dotted(self, relative, line, where, root, parts, called) -> None:
        dotted = ".".join([root, *parts])
        if root == "torch":
            if len(parts) != 1 or parts[0] not in TORCH_OPS:
                self.refuse(relative, line, where, dotted, called)
        elif root == "ops":
            namespace = parts[0] if parts else ""
            allowed = TORCH_OPS if namespace == "aten" else PRIM_OPS if namespace == "prim" else frozenset()
            if len(parts) != 2 or parts[1] not in allowed:
                self.refuse(relative, line, where, dotted, called)
        elif root == "CONSTANTS":
            if len(parts) != 1 or not re.fullmatch(r"c\d+", parts[0]):
                self.refuse(relative, line, where, dotted, called)
        elif root == "__torch__":
            if dotted.startswith(f"__torch__.{_CUSTOM_CLASSES}"):
                self.refuse(relative, line, where, dotted, called)
            else:
                self.pending_archive.setdefault(dotted, (relative, line, where, called))
        else:   # math.*, os.*, builtins reached through a dot: nothing TorchScript's loader resolves for benign code
            self.refuse(relative, line, where, dotted, called)

    # the whole archive
    def finish(self) -> None:
        for dotted, (relative, line, where, called) in self.pending_archive.items():
            target = dotted[:-len(".__new__")] if dotted.endswith(".__new__") else dotted
            if target not in self.defined or (dotted != target and target not in self.classes):
                self.refuse(relative, line, where, f"{dotted} (not defined in the archive)", called)
        for name, (relative, line, where) in self.member_declared.items():
            if name not in VALUE_ATTRIBUTES and not _is_dunder(name) and _is_operator_name(name):
                self.refuse(relative, line, where, f"a field or method named {name}, like the tensor operation "
                                                   f"torch.{name}")
        for name, (relative, line, where, called) in self.pending_members.items():
            if name not in self.members:
                self.refuse(relative, line, where, f".{name}", called)


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


def _literal_getattr(node) -> bool:
    """getattr(value, "name"): TorchScript resolves it like value.name (getattr(torch, "from_file") is from_file)."""
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
            and len(node.args) == 2 and not node.keywords and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str))


def _chain(node) -> tuple[ast.AST, list[str], list[int]]:
    """a.b.c or getattr(getattr(a, "b"), "c") -> (a, ["b", "c"], ids of the nodes the chain consists of)."""
    parts, chain = [], []
    while True:
        if isinstance(node, ast.Attribute):
            parts.append(node.attr)
            chain.append(id(node))
            node = node.value
        elif _literal_getattr(node):
            parts.append(node.args[1].value)
            chain.extend((id(node), id(node.func), id(node.args[1])))
            node = node.args[0]
        else:
            break
    parts.reverse()
    return node, parts, chain


def _walk(roots):
    """ast.walk over several roots, parents before children (a chain is met at its outermost node first)."""
    from collections import deque

    todo = deque(roots)
    while todo:
        node = todo.popleft()
        todo.extend(ast.iter_child_nodes(node))
        yield node


# --- the pickles ---------------------------------------------------------------------------------------------------
def _pickle_globals(data: bytes, type_tags: bool):
    """(position, module, name) of every global a pickle names and, with ``type_tags``, of every string naming
    torch's C++ classes (a type tag the reader resolves). Debug records hold source text, read without types."""
    strings: list[str] = []
    for opcode, arg, position in pickletools.genops(io.BytesIO(data)):
        if opcode.name in ("GLOBAL", "INST"):
            module, _, name = str(arg).partition(" ")
            yield position, module, name
        elif opcode.name == "STACK_GLOBAL":
            yield position, (strings[-2] if len(strings) > 1 else "?"), (strings[-1] if strings else "?")
        elif isinstance(arg, str):
            strings.append(arg)
            del strings[:-2]
            if type_tags and _CUSTOM_CLASSES in arg:   # a type tag naming a C++ class
                yield position, arg, ""
        if opcode.name == "STOP":
            break


def _check_pickle(check: _CodeCheck, relative: str, data: bytes, path) -> None:
    try:
        for position, module, name in _pickle_globals(data, not relative.endswith(".debug_pkl")):
            if module == "__torch__" or module.startswith("__torch__."):
                qualified = f"{module}.{name}"
                if _CUSTOM_CLASSES in qualified or qualified not in check.classes:
                    check.refuse(relative, position, "pickle", f"{qualified} (a class the archive's code does "
                                                                f"not define)")
            elif module == "torch" and name in _STORAGE_DTYPES:
                continue
            elif name not in _PICKLE_GLOBALS.get(module, ()):
                check.refuse(relative, position, "pickle", f"{module}.{name}" if name else module)
    except Exception as exc:  # pickletools raises ValueError for most damage, others for the rest
        raise fail(path, f"refused: {relative} is not a readable pickle ({exc})") from None


# --- public entry points ------------------------------------------------------------------------------------------
def scan_archive(source: str | os.PathLike | BinaryIO, *, path: str | os.PathLike | None = None) -> CodeScan:
    """Check a TorchScript archive's code and pickles without loading it. ``source`` is its path or an open binary
    file (``path`` then names it in messages). Raises CheckpointError when the archive cannot be checked (damaged,
    oversized, bomb-like, duplicate entries, code that is not Python syntax); returns a CodeScan whose ``ok`` says
    whether every name its code uses is allowed."""
    check = _CodeCheck()
    with _Archive(source, path) as archive:
        path = archive.path
        code, pickles = [], []
        for info in archive.infos:
            archive.check_unpacking(info)
            relative = archive.relative(info)
            if _is_code(relative):
                code.append(info)
            elif _is_pickle(relative):
                pickles.append(info)
        if not code or not any(archive.relative(i) == "data.pkl" for i in pickles):
            raise fail(path, "not a TorchScript archive: no code/ folder or no data.pkl inside")
        for infos, total_limit, what in ((code, CODE_TOTAL_LIMIT, "TorchScript code"),
                                         (pickles, PICKLE_TOTAL_LIMIT, "pickled records")):
            total = sum(i.file_size for i in infos)
            if total > total_limit:
                raise fail(path, f"refused: its {what} unpacks to {_size(total)}, over the {_size(total_limit)} "
                                 "limit")
        for info in code:
            raw = archive.read(info, CODE_FILE_LIMIT, "code file")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise fail(path, f"refused: {archive.relative(info)} cannot be checked: it is not UTF-8 text") from None
            del raw
            check.add_file(archive.relative(info), text, path)
        for info in pickles:
            _check_pickle(check, archive.relative(info), archive.read(info, PICKLE_FILE_LIMIT, "pickle"), path)
    check.finish()
    refused = tuple(str(r) for r in check.refusals)
    if check.refused_count:
        first = check.refusals[0]
        verb = "calls" if first.called else "uses"
        more = f" and {check.refused_count - 1} more" if check.refused_count > 1 else ""
        verdict = f"refused: {verb} {first.name} ({first.file}:{first.line} in {first.where}){more}"
    else:
        verdict = (f"checked: {check.functions} functions, {check.calls} calls, all tensor operations")
    return CodeScan(ok=not check.refused_count, functions=check.functions, calls=check.calls, refused=refused,
                    verdict=verdict, files=check.files, refused_count=check.refused_count)


def require_clean(source: str | os.PathLike | BinaryIO, *, path: str | os.PathLike | None = None) -> CodeScan:
    """scan_archive, raising CheckpointError unless the archive's code uses only allowed operations."""
    scan = scan_archive(source, path=path)
    path = path if path is not None else source
    if not scan.ok:
        shown = "; ".join(scan.refused[:3])
        more = f" (and {scan.refused_count - 3} more)" if scan.refused_count > 3 else ""
        raise fail(path, f"refused to load this TorchScript archive: its code uses more than tensor operations "
                         f"({shown}{more}); TorchScript runs its code while it loads, and such code can reach files "
                         "or other programs, so nothing in it was run")
    return scan


def read_card_json(source: str | os.PathLike | BinaryIO, card_file: str = CARD_FILE, *,
                   path: str | os.PathLike | None = None) -> bytes | None:
    """The bytes of the archive's extra file ``<top>/extra/<card_file>``, or None when the archive has none.
    Raises CheckpointError for an archive that is damaged or whose card unpacks over ``CARD_LIMIT``."""
    with _Archive(source, path) as archive:
        wanted = f"extra/{card_file}"
        info = next((i for i in archive.infos if archive.relative(i) == wanted), None)
        if info is None:
            return None
        return archive.read(info, CARD_LIMIT, "model card")


def weights_summary(source: str | os.PathLike | BinaryIO, *,
                    path: str | os.PathLike | None = None) -> tuple[int, str]:
    """(number of values, main floating dtype) of the archive's parameters and buffers, as ``state_dict()`` of the
    loaded module would count them, read from ``data.pkl``'s opcodes and the class bodies in ``code/`` without
    running either. A module whose own ``__getstate__`` replaced its attributes counts nothing (only running its
    ``__setstate__`` could tell); a pickle this reader cannot follow is counted by its storages instead."""
    with _Archive(source, path) as archive:
        path = archive.path
        by_name = {archive.relative(i): i for i in archive.infos}
        if "data.pkl" not in by_name:
            raise fail(path, "not a TorchScript archive: no data.pkl inside")
        classes: dict[str, tuple[bool, list[str]]] = {}
        total = 0
        for relative, info in by_name.items():
            if _is_code(relative):
                total += info.file_size
                if total > CODE_TOTAL_LIMIT:
                    raise fail(path, f"refused: its TorchScript code unpacks to over {_size(CODE_TOTAL_LIMIT)}")
                text = archive.read(info, CODE_FILE_LIMIT, "code file").decode("utf-8", "replace")
                classes.update(_class_states(_module_of(relative), text))
        data = archive.read(by_name["data.pkl"], PICKLE_FILE_LIMIT, "pickle")
    reader = _PickleReader(data)
    try:
        root = reader.run()
    except ValueError as exc:   # pickletools: not a pickle, or a truncated one
        raise fail(path, f"refused: data.pkl is not a readable pickle ({exc})") from None
    except (_Unsupported, IndexError, KeyError, TypeError, AttributeError):
        # an opcode or layout this reader does not follow: count the storages met so far instead
        return _count_and_dtype(((s.numel,), s.dtype) for s in reader.storages)
    return _count_and_dtype(_state_tensors(root, classes))


# --- reading data.pkl without unpickling ---------------------------------------------------------------------------
_CLASS_LINE = re.compile(r"^class (\w+)(?:\((\w+)\))?:")
_STATE_LINE = re.compile(r"^\s+(__parameters__|__buffers__) = (\[.*\])\s*$")


def _class_states(module: str, text: str) -> dict[str, tuple[bool, list[str]]]:
    """{module.Class: (is a Module, parameter and buffer names)} from the class bodies torch.jit.save writes."""
    found: dict[str, tuple[bool, list[str]]] = {}
    current = None
    for line in text.splitlines():
        header = _CLASS_LINE.match(line)
        if header:
            current = f"{module}.{header.group(1)}"
            found[current] = (header.group(2) == "Module", [])
            continue
        state = _STATE_LINE.match(line)
        if state and current:
            try:
                names = ast.literal_eval(state.group(2))
            except (ValueError, SyntaxError):
                continue
            found[current][1].extend(str(n) for n in names)
    return found


@dataclass
class _Storage:
    dtype: str
    numel: int


@dataclass
class _Tensor:
    shape: tuple
    dtype: str


@dataclass
class _Object:
    cls: str
    state: object = None


@dataclass(frozen=True)
class _Global:
    module: str
    name: str


class _Unsupported(Exception):
    pass


_MARK = object()


class _PickleReader:
    """Follows a TorchScript pickle's opcodes with inert stand-ins: globals stay names, objects stay records,
    persistent ids become storage descriptions. Nothing is imported or called."""

    def __init__(self, data: bytes):
        self.data = data
        self.stack: list = []
        self.memo: dict = {}
        self.storages: list[_Storage] = []

    def _pop_mark(self) -> list:
        items = []
        while True:
            if not self.stack:
                raise _Unsupported("no mark")
            item = self.stack.pop()
            if item is _MARK:
                return items[::-1]
            items.append(item)

    def run(self):
        stack = self.stack
        for opcode, arg, _ in pickletools.genops(io.BytesIO(self.data)):
            name = opcode.name
            if name in ("PROTO", "FRAME"):
                continue
            if name == "STOP":
                return stack.pop()
            if name == "MARK":
                stack.append(_MARK)
            elif name in ("BINUNICODE", "SHORT_BINUNICODE", "UNICODE", "BINUNICODE8", "BININT", "BININT1", "BININT2",
                          "LONG1", "LONG4", "INT", "LONG", "BINFLOAT", "FLOAT", "BINBYTES", "SHORT_BINBYTES",
                          "BINBYTES8", "STRING", "BINSTRING", "SHORT_BINSTRING"):
                stack.append(arg)
            elif name == "NONE":
                stack.append(None)
            elif name in ("NEWTRUE", "NEWFALSE"):
                stack.append(name == "NEWTRUE")
            elif name == "GLOBAL":
                module, _, attr = str(arg).partition(" ")
                stack.append(_Global(module, attr))
            elif name == "STACK_GLOBAL":
                attr, module = stack.pop(), stack.pop()
                stack.append(_Global(str(module), str(attr)))
            elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
                self.memo[arg] = stack[-1]
            elif name == "MEMOIZE":
                self.memo[len(self.memo)] = stack[-1]
            elif name in ("BINGET", "LONG_BINGET", "GET"):
                stack.append(self.memo[arg])
            elif name == "EMPTY_TUPLE":
                stack.append(())
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                count = int(name[-1])
                items = tuple(stack[-count:])
                del stack[-count:]
                stack.append(items)
            elif name == "TUPLE":
                stack.append(tuple(self._pop_mark()))
            elif name == "EMPTY_LIST":
                stack.append([])
            elif name == "LIST":
                stack.append(self._pop_mark())
            elif name == "APPEND":
                value = stack.pop()
                stack[-1].append(value)
            elif name == "APPENDS":
                items = self._pop_mark()
                stack[-1].extend(items)
            elif name == "EMPTY_DICT":
                stack.append({})
            elif name == "DICT":
                items = self._pop_mark()
                stack.append(dict(zip(items[::2], items[1::2])))
            elif name == "SETITEM":
                value, key = stack.pop(), stack.pop()
                stack[-1][_key(key)] = value
            elif name == "SETITEMS":
                items = self._pop_mark()
                for key, value in zip(items[::2], items[1::2]):
                    stack[-1][_key(key)] = value
            elif name == "BINPERSID":
                stack.append(self._persistent(stack.pop()))
            elif name in ("NEWOBJ", "REDUCE"):
                args, callee = stack.pop(), stack.pop()
                stack.append(self._reduce(callee, args))
            elif name == "BUILD":
                state = stack.pop()
                if isinstance(stack[-1], _Object):
                    stack[-1].state = state
            elif name == "POP":
                stack.pop()
            elif name == "POP_MARK":
                self._pop_mark()
            elif name == "DUP":
                stack.append(stack[-1])
            else:
                raise _Unsupported(name)
        raise _Unsupported("no STOP")

    def _persistent(self, pid):
        if (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            kind, numel = pid[1], pid[4]
            if isinstance(kind, _Global) and kind.module == "torch":
                dtype = _STORAGE_DTYPES.get(kind.name, kind.name.removesuffix("Storage").lower())
            else:
                dtype = str(kind).removeprefix("torch.")
            storage = _Storage(dtype, int(numel))
            self.storages.append(storage)
            return storage
        raise _Unsupported("persistent id")

    def _reduce(self, callee, args):
        if isinstance(callee, _Global):
            if (callee.module, callee.name) == ("torch._utils", "_rebuild_tensor_v2"):
                storage, _, size = args[0], args[1], args[2]
                dtype = storage.dtype if isinstance(storage, _Storage) else "float32"
                return _Tensor(tuple(int(s) for s in size), dtype)
            if callee.module == "torch.jit._pickle" and args:
                return args[0]
            if callee.module.startswith("__torch__"):
                return _Object(f"{callee.module}.{callee.name}")
        return None


def _key(key):
    try:
        hash(key)
        return key
    except TypeError:
        return repr(key)


def _state_tensors(root, classes, depth: int = 0):
    """(shape, dtype) of every parameter and buffer under ``root``, in the order state_dict() lists them."""
    if not isinstance(root, _Object) or depth > 200:
        return
    is_module, names = classes.get(root.cls, (False, []))
    state = root.state if isinstance(root.state, dict) else {}
    if not is_module:
        return
    for name in names:
        value = state.get(name)
        if isinstance(value, _Tensor):
            yield value.shape, value.dtype
    for value in state.values():
        if isinstance(value, _Object):
            yield from _state_tensors(value, classes, depth + 1)
