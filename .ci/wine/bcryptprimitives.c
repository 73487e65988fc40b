/*
 * A stand-in for Windows' bcryptprimitives.dll, for running the test suite
 * under Wine 8.0 (Debian 12's) in CI; see .ci/windows.sh.
 *
 * Why it exists: Rust's std (since 1.78) draws its random numbers (the
 * HashMap seed) from ProcessPrng, imported from bcryptprimitives.dll. Wine
 * 8.0 has no ProcessPrng, so every Rust program for Windows fails to load
 * under it before main. This DLL exports ProcessPrng alone, backed by
 * advapi32's SystemFunction036 (RtlGenRandom), which Wine has.
 *
 * When it can go: Wine 9.x has ProcessPrng in its own bcryptprimitives.dll;
 * once CI's Wine is 9 or newer, delete this directory and the DLL step of
 * .ci/windows.sh.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG len);

/* Fills `data` with `len` random bytes. The real ProcessPrng always returns
 * TRUE (callers such as std do not check); this one reports a failure of
 * RtlGenRandom as FALSE, which std turns into a panic rather than a weak
 * seed. */
BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG n = len > 0x7fffffff ? 0x7fffffff : (ULONG)len;
        if (!SystemFunction036(data, n))
            return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}
