# cmake -DDYNAMORPH=bin -DHELP2MAN=help2man -DGZIP=gzip -DESSENTIALS=file.h2m -DOUTPUT=dynamorph.1
#       -P man_page.cmake
# Writes OUTPUT (the man page) and OUTPUT.gz: help2man on `dynamorph --help`, with a COMMANDS
# section holding every subcommand's --help (bench's own subcommands too) and the hand-written
# sections of ESSENTIALS. Run at build time by cmake/install.cmake.
foreach(var DYNAMORPH HELP2MAN GZIP ESSENTIALS OUTPUT)
  if(NOT ${var})
    message(FATAL_ERROR "man_page.cmake: -D${var}=... is missing")
  endif()
endforeach()

# The help of `dynamorph ARGS --help`, the binary's path in its Usage line shown as "dynamorph".
function(help_of out)
  execute_process(COMMAND ${DYNAMORPH} ${ARGN} --help OUTPUT_VARIABLE text RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "man_page.cmake: `dynamorph ${ARGN} --help` exited ${rc}")
  endif()
  string(REPLACE "${DYNAMORPH}" "dynamorph" text "${text}")
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

# The names listed under "Subcommands:" in a CLI11 help text.
function(subcommands_of out text)
  string(REGEX REPLACE ".*\nSubcommands:\n" "" list "${text}")
  string(REGEX MATCHALL "(^|\n)  [a-z][a-z0-9_-]*" names "${list}")
  set(result "")
  foreach(n ${names})
    string(STRIP "${n}" n)
    list(APPEND result ${n})
  endforeach()
  set(${out} ${result} PARENT_SCOPE)
endfunction()

# A help text as a no-fill roff block: backslashes and leading dots or quotes escaped.
function(roff_block out text)
  string(REPLACE "\\" "\\e" text "${text}")
  string(REGEX REPLACE "(^|\n)([.'])" "\\1\\\\&\\2" text "${text}")
  string(REGEX REPLACE "\n+$" "" text "${text}")
  set(${out} ".nf\n${text}\n.fi\n" PARENT_SCOPE)
endfunction()

help_of(main_help)
subcommands_of(commands "${main_help}")
if(NOT commands)
  message(FATAL_ERROR "man_page.cmake: no subcommands found in `dynamorph --help`")
endif()
set(include "[COMMANDS]\n")
string(APPEND include "Each command's own options, as `dynamorph COMMAND --help` prints them.\n")
foreach(c ${commands})
  help_of(h ${c})
  roff_block(block "${h}")
  string(APPEND include ".SS \"dynamorph ${c}\"\n${block}")
  subcommands_of(subs "${h}")
  if(h MATCHES "\nSubcommands:\n")
    foreach(s ${subs})
      help_of(sh ${c} ${s})
      roff_block(block "${sh}")
      string(APPEND include ".SS \"dynamorph ${c} ${s}\"\n${block}")
    endforeach()
  endif()
endforeach()
file(READ ${ESSENTIALS} essentials)
get_filename_component(dir ${OUTPUT} DIRECTORY)
file(WRITE ${dir}/dynamorph.h2m "${include}\n${essentials}")

execute_process(
  COMMAND ${HELP2MAN} --no-info --section 1 --manual "User Commands"
          --name "versioned migrations and bulk reshapes for Amazon DynamoDB"
          --include ${dir}/dynamorph.h2m --output ${OUTPUT}.tmp ${DYNAMORPH}
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "man_page.cmake: help2man exited ${rc}")
endif()
file(READ ${OUTPUT}.tmp page)
string(REPLACE "${DYNAMORPH}" "dynamorph" page "${page}")
file(WRITE ${OUTPUT} "${page}")
file(REMOVE ${OUTPUT}.tmp)
# -n: no name or time stamp in the .gz, so the same page gives the same bytes.
execute_process(COMMAND ${GZIP} -9nc ${OUTPUT} OUTPUT_FILE ${OUTPUT}.gz RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "man_page.cmake: gzip exited ${rc}")
endif()
