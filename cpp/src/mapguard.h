// Keeps a read-only file mapping safe to read when its file shrinks under it. Reading a page of
// a mapping past the end of its file raises SIGBUS, which would kill the process when another
// program truncates or rewrites the file in place (`cp new.sqf model.sqf`). For a guarded
// mapping, the handler maps a page of zeros over the missing one and marks the mapping damaged,
// so the reads in flight finish; the owner then reports the error (SqfFile::check_unchanged).
// SIGBUS outside guarded mappings goes to the handler installed before, or kills as usual.
#pragma once

#include <cstddef>

namespace sqllm {

// Registers the mapping [start, start + length); false when the registry is full (the mapping
// is then not guarded).
bool guard_mapping(const void *start, size_t length);
// Unregisters it; call before unmapping.
void unguard_mapping(const void *start);
// True once a read of the guarded mapping at `start` found its page missing.
bool mapping_damaged(const void *start);

}  // namespace sqllm
