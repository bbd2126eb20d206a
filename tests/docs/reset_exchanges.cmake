# cmake -DDIR=<dir> -P reset_exchanges.cmake: empties the folder the suites record their
# HTTP exchanges in, so that the check after them sees this run's exchanges only.
if(NOT DIR)
  message(FATAL_ERROR "reset_exchanges.cmake: pass -DDIR=<folder>")
endif()
file(REMOVE_RECURSE ${DIR})
file(MAKE_DIRECTORY ${DIR})
