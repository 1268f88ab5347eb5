/* bcryptprimitives.dll for Wine 8, which lacks it: Go 1.24 and later fetch
 * their random seed from ProcessPrng and refuse to start without it.
 * RtlGenRandom (SystemFunction036 in advapi32) fills the buffer instead. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
	while (len > 0) {
		ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
		if (!SystemFunction036(data, n))
			return FALSE;
		data += n;
		len -= n;
	}
	return TRUE;
}
