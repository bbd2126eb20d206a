/*
 * The NATS C client, loaded on the first call (lazy.h, ADR 0047): what the bus's NATS
 * transport calls. A process whose bus is in-process never maps libnats nor protobuf-c.
 */
#include <nats/nats.h>

#include "lazy.h"

/* Every function of libnats the tree calls. */
#define NATS_FUNCTIONS(R, V, N)                                                                    \
    R(natsStatus, natsOptions_Create, (natsOptions * *opts), (opts))                               \
    V(natsOptions_Destroy, (natsOptions * opts), (opts))                                           \
    R(natsStatus, natsOptions_SetURL, (natsOptions * opts, const char *url), (opts, url))          \
    R(natsStatus, natsOptions_SetMaxReconnect, (natsOptions * opts, int max), (opts, max))         \
    R(natsStatus, natsOptions_SetReconnectWait, (natsOptions * opts, int64_t wait), (opts, wait))  \
    R(natsStatus, natsConnection_Connect, (natsConnection * *nc, natsOptions * options),           \
      (nc, options))                                                                               \
    V(natsConnection_Destroy, (natsConnection * nc), (nc))                                         \
    V(natsConnection_Close, (natsConnection * nc), (nc))                                           \
    R(bool, natsConnection_IsClosed, (natsConnection * nc), (nc))                                  \
    R(natsStatus, natsConnection_FlushTimeout, (natsConnection * nc, int64_t timeout),             \
      (nc, timeout))                                                                               \
    R(natsStatus, natsConnection_JetStream, (jsCtx * *js, natsConnection * nc, jsOptions * opts),  \
      (js, nc, opts))                                                                              \
    R(const char *, natsStatus_GetText, (natsStatus s), (s))                                       \
    R(natsStatus, natsMsgHeader_Get, (natsMsg * msg, const char *key, const char **value),         \
      (msg, key, value))                                                                           \
    V(natsMsgList_Destroy, (natsMsgList * list), (list))                                           \
    R(natsStatus, natsMsg_Ack, (natsMsg * msg, jsOptions * opts), (msg, opts))                     \
    V(natsMsg_Destroy, (natsMsg * msg), (msg))                                                     \
    R(const char *, natsMsg_GetData, (const natsMsg *msg), (msg))                                  \
    R(int, natsMsg_GetDataLength, (const natsMsg *msg), (msg))                                     \
    R(const char *, natsMsg_GetSubject, (const natsMsg *msg), (msg))                               \
    V(natsSubscription_Destroy, (natsSubscription * sub), (sub))                                   \
    R(natsStatus, natsSubscription_Fetch,                                                          \
      (natsMsgList * list, natsSubscription * sub, int batch, int64_t timeout, jsErrCode *err),    \
      (list, sub, batch, timeout, err))                                                            \
    R(natsStatus, natsSubscription_FetchRequest,                                                   \
      (natsMsgList * list, natsSubscription * sub, jsFetchRequest * request),                      \
      (list, sub, request))                                                                        \
    R(natsStatus, natsSubscription_GetPending, (natsSubscription * sub, int *msgs, int *bytes),    \
      (sub, msgs, bytes))                                                                          \
    R(natsStatus, jsOptions_Init, (jsOptions * opts), (opts))                                      \
    R(natsStatus, jsPubOptions_Init, (jsPubOptions * opts), (opts))                                \
    R(natsStatus, jsSubOptions_Init, (jsSubOptions * opts), (opts))                                \
    R(natsStatus, jsStreamConfig_Init, (jsStreamConfig * cfg), (cfg))                              \
    R(natsStatus, jsConsumerConfig_Init, (jsConsumerConfig * cc), (cc))                            \
    R(natsStatus, jsFetchRequest_Init, (jsFetchRequest * request), (request))                      \
    V(jsCtx_Destroy, (jsCtx * js), (js))                                                           \
    V(jsStreamInfo_Destroy, (jsStreamInfo * si), (si))                                             \
    V(jsConsumerInfo_Destroy, (jsConsumerInfo * ci), (ci))                                         \
    R(natsStatus, js_AddStream,                                                                    \
      (jsStreamInfo * *si, jsCtx * js, jsStreamConfig * cfg, jsOptions * opts, jsErrCode * err),   \
      (si, js, cfg, opts, err))                                                                    \
    R(natsStatus, js_GetStreamInfo,                                                                \
      (jsStreamInfo * *si, jsCtx * js, const char *stream, jsOptions *opts, jsErrCode *err),       \
      (si, js, stream, opts, err))                                                                 \
    R(natsStatus, js_AddConsumer,                                                                  \
      (jsConsumerInfo * *ci, jsCtx * js, const char *stream, jsConsumerConfig *cfg,                \
       jsOptions *opts, jsErrCode *err),                                                           \
      (ci, js, stream, cfg, opts, err))                                                            \
    R(natsStatus, js_GetConsumerInfo,                                                              \
      (jsConsumerInfo * *ci, jsCtx * js, const char *stream, const char *consumer,                 \
       jsOptions *opts, jsErrCode *err),                                                           \
      (ci, js, stream, consumer, opts, err))                                                       \
    R(natsStatus, js_PublishAsync,                                                                 \
      (jsCtx * js, const char *subject, const void *data, int len, jsPubOptions *opts),            \
      (js, subject, data, len, opts))                                                              \
    R(natsStatus, js_PublishAsyncGetPendingList, (natsMsgList * pending, jsCtx * js),              \
      (pending, js))                                                                               \
    R(natsStatus, js_PullSubscribe,                                                                \
      (natsSubscription * *sub, jsCtx * js, const char *subject, const char *durable,              \
       jsOptions *opts, jsSubOptions *subOpts, jsErrCode *err),                                    \
      (sub, js, subject, durable, opts, subOpts, err))

CL__LAZY_SHIM(NATS_FUNCTIONS, CLEAVE_LAZY_SONAME)
