# ctest's example_out_of_tree: installs the build in BUILD_DIR into WORK_DIR/prefix, then
# configures, builds and runs this folder's project against it (cmake -P, so no shell needed).
# Both are made afresh each time, so a file the install leaves out cannot hide behind an old one.
# FLAGS (may be empty): compile and link flags the installed libraries need, e.g. sanitizers.
foreach(var BUILD_DIR SOURCE_DIR WORK_DIR GENERATOR CXX BUILD_TYPE)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run.cmake: -D${var}=... is required")
  endif()
endforeach()
set(prefix ${WORK_DIR}/prefix)
set(build ${WORK_DIR}/build)
file(REMOVE_RECURSE ${prefix} ${build})

function(run step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE status)
  if(NOT status EQUAL 0)
    message(FATAL_ERROR "out-of-tree example: ${step} failed (${status})")
  endif()
endfunction()

run(install ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
# No package registry: the package must come from the prefix, never from the build tree.
run(configure ${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${build} -G ${GENERATOR}
  -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_BUILD_TYPE=${BUILD_TYPE} -DCMAKE_PREFIX_PATH=${prefix}
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF "-DCMAKE_CXX_FLAGS=${FLAGS}"
  "-DCMAKE_EXE_LINKER_FLAGS=${FLAGS}")
run(build ${CMAKE_COMMAND} --build ${build})
run(example ${build}/train_attention)
