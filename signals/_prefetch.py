"""`prefetch_row_nb`: ask the CPU to start loading a row of an array that a kernel reads soon.

A backtest over 1M bars reads the open, high, low and regime of a bar only when an order fills
or a decision is made on it, about once every few dozen bars: far enough apart that the
hardware prefetcher never sees a stream, so each of those reads waited for main memory (about
half of `simulate_nb`'s time in the 1M-bar MA-crossover benchmark). Loops that walk the bars
anyway hint the rows a few bars ahead instead. A prefetch is only a hint: it never faults
(even out of bounds), never changes a value, and costs about one instruction.
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def prefetch_row_nb(typingctx, arr, row):
    """Hint a read of the first element of row `row` of `arr` (any C-contiguous 1-D or 2-D
    numeric array); returns nothing. No bounds check: an address past the end is harmless."""
    if not isinstance(arr, types.Array) or arr.ndim not in (1, 2):
        return None
    if not isinstance(row, types.Integer):
        return None
    sig = types.void(arr, row)

    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        array = context.make_array(array_type)(context, builder, args[0])
        index = context.cast(builder, args[1], signature.args[1], types.intp)
        # data + row * strides[0]: the row's first element, without numba's bounds logic
        stride = builder.extract_value(array.strides, 0)
        offset = builder.mul(index, stride)
        byte_ptr = builder.bitcast(array.data, ir.IntType(8).as_pointer())
        address = builder.gep(byte_ptr, [offset])
        i32 = ir.IntType(32)
        fn_type = ir.FunctionType(ir.VoidType(), [byte_ptr.type, i32, i32, i32])
        prefetch = cgutils.get_or_insert_function(builder.module, fn_type, "llvm.prefetch.p0")
        # read (0), keep in all cache levels (3), data cache (1)
        builder.call(prefetch, [address, i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen
