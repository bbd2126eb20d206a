/*
 * greeter/greeter.h - a one-operation module for the install test: greet records a
 * name and answers with a greeting and how many greetings were given so far.
 */
#ifndef GREETER_GREETER_H
#define GREETER_GREETER_H

#include "cleave/module.h"

#define GREETER_OPS_VERSION   1
#define GREETER_NAME_MAX      64

/* name: 1-64 bytes. */
#define GREETER_REQUEST(X, T) X(T, STR, name, _)
CL_TYPE_DECLARE(greeter_request, GREETER_REQUEST)

#define GREETER_GREETING(X, T)                                                                     \
    X(T, STR, message, _)                                                                          \
    X(T, I64, count, _)
CL_TYPE_DECLARE(greeter_greeting, GREETER_GREETING)

/* greet: CL_INVALID (name), CL_UNAVAILABLE, CL_INTERNAL. */
#define GREETER_OPERATIONS(X, M) X(M, greet, greeter_request, greeter_greeting, CL_OP_WRITE)
CL_OPS_DECLARE(greeter, GREETER_OPERATIONS)

extern const cl_module_api greeter_api;
extern const cl_module greeter_module;

#endif /* GREETER_GREETER_H */
