/* pyoffsets.c - prints one row of core/pyoffsets.h for the CPython whose
 * headers it is compiled against (scripts/pyoffsets.sh). Development tool:
 * the shim itself never needs headers or debug symbols of the interpreter. */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <stddef.h>
#include <stdio.h>
#if PY_VERSION_HEX >= 0x030b0000
#include "internal/pycore_frame.h"
#else
#include "frameobject.h"
#endif

int main(void) {
    printf("    {.major = %d, .minor = %d,\n", PY_MAJOR_VERSION, PY_MINOR_VERSION);
#if PY_VERSION_HEX >= 0x030d0000
    printf("     .tstate_frame = %zu, .cframe_current = -1,\n", offsetof(PyThreadState, current_frame));
    printf("     .frame_code = %zu, .frame_previous = %zu, .frame_instr = %zu, .frame_owner = %zu,\n",
           offsetof(_PyInterpreterFrame, f_executable), offsetof(_PyInterpreterFrame, previous),
           offsetof(_PyInterpreterFrame, instr_ptr), offsetof(_PyInterpreterFrame, owner));
#elif PY_VERSION_HEX >= 0x030b0000
    printf("     .tstate_frame = %zu, .cframe_current = %zu,\n", offsetof(PyThreadState, cframe),
           offsetof(_PyCFrame, current_frame));
    printf("     .frame_code = %zu, .frame_previous = %zu, .frame_instr = %zu, .frame_owner = %zu,\n",
           offsetof(_PyInterpreterFrame, f_code), offsetof(_PyInterpreterFrame, previous),
           offsetof(_PyInterpreterFrame, prev_instr), offsetof(_PyInterpreterFrame, owner));
#else
    printf("     .tstate_frame = %zu, .cframe_current = -1,\n", offsetof(PyThreadState, frame));
    printf("     .frame_code = %zu, .frame_previous = %zu, .frame_instr = %zu, .frame_owner = -1,\n",
           offsetof(PyFrameObject, f_code), offsetof(PyFrameObject, f_back),
           offsetof(PyFrameObject, f_lasti));
#endif
    printf("     .code_filename = %zu, .code_name = %zu, ", offsetof(PyCodeObject, co_filename),
           offsetof(PyCodeObject, co_name));
#if PY_VERSION_HEX >= 0x030b0000
    printf(".code_qualname = %zu, .code_linetable = %zu,\n", offsetof(PyCodeObject, co_qualname),
           offsetof(PyCodeObject, co_linetable));
    printf("     .code_firstlineno = %zu, .code_firsttraceable = %zu, .code_code = %zu,\n",
           offsetof(PyCodeObject, co_firstlineno), offsetof(PyCodeObject, _co_firsttraceable),
           offsetof(PyCodeObject, co_code_adaptive));
#elif PY_VERSION_HEX >= 0x030a0000
    printf(".code_qualname = -1, .code_linetable = %zu,\n", offsetof(PyCodeObject, co_linetable));
    printf("     .code_firstlineno = %zu, .code_firsttraceable = -1, .code_code = -1,\n",
           offsetof(PyCodeObject, co_firstlineno));
#else
    printf(".code_qualname = -1, .code_linetable = %zu,\n", offsetof(PyCodeObject, co_lnotab));
    printf("     .code_firstlineno = %zu, .code_firsttraceable = -1, .code_code = -1,\n",
           offsetof(PyCodeObject, co_firstlineno));
#endif
    printf("     .bytes_data = %zu, .ascii_size = %zu, .compact_size = %zu},\n",
           offsetof(PyBytesObject, ob_sval), sizeof(PyASCIIObject), sizeof(PyCompactUnicodeObject));
    return 0;
}
