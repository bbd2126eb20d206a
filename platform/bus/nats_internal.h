/* The NATS transport's internals that its tests reach (nats.c). */
#ifndef CLEAVE_BUS_NATS_INTERNAL_H
#define CLEAVE_BUS_NATS_INTERNAL_H

#include <stdint.h>

#include <nats/nats.h>

/*
 * Up to batch messages of a pull subscription into list, waiting up to wait_ms when none
 * is there: NATS_OK with at least one message, NATS_TIMEOUT with none, or the client's error.
 * Safe against the overflow of the NATS C client 3.4.1 whatever is already waiting.
 */
natsStatus cl__nats_fetch(natsMsgList *list, natsSubscription *sub, int batch, int64_t wait_ms);

#endif
