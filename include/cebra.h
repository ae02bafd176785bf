#ifndef CEBRA_H
#define CEBRA_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#endif  /* CEBRA_H */
