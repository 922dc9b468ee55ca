/*
 * libFuzzer target for the DNS answer walker (xmppd/net/dns_msg.c): any
 * bytes, as a DNS server (or anyone spoofing one) could send; the walker
 * must stay within them and terminate, and a count it returns must come
 * with a TTL it set.
 */
#include <stdint.h>
#include <stdlib.h>

#include "net/dns_msg.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned types[] = {DNS_T_SRV, DNS_T_A, DNS_T_AAAA};

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		uint32_t ttl = 0xdeadbeef;
		int n = dns_answer_ttl(data, size, types[i], &ttl);

		if (n < -1 || n > 65535 || (n > 0 && ttl > 0x7fffffffu))
			abort();
		if (n <= 0 && ttl != 0xdeadbeef)
			abort();
	}
	return 0;
}
