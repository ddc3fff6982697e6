# Writes build_info.h with the current git commit; run at every build so the
# commit `moebench --version` prints is the one built, touching the header only
# when it changes. Inputs: SOURCE_DIR, TEMPLATE, OUTPUT, PROJECT_VERSION.
execute_process(COMMAND git rev-parse --short=12 HEAD
                WORKING_DIRECTORY ${SOURCE_DIR}
                OUTPUT_VARIABLE MOEBENCH_GIT_COMMIT OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT MOEBENCH_GIT_COMMIT)
  set(MOEBENCH_GIT_COMMIT "unknown")
endif()
execute_process(COMMAND git status --porcelain --untracked-files=no
                WORKING_DIRECTORY ${SOURCE_DIR}
                OUTPUT_VARIABLE MOEBENCH_GIT_DIRTY OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(MOEBENCH_GIT_DIRTY)
  string(APPEND MOEBENCH_GIT_COMMIT "-dirty")
endif()
configure_file(${TEMPLATE} ${OUTPUT}.new @ONLY)
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different ${OUTPUT}.new ${OUTPUT})
