# install(SCRIPT): writes relived.service and relived-ha@.service for the prefix being installed
# into (CMAKE_INSTALL_PREFIX at install time: /usr for the Debian package, /usr/local by default
# from source). systemd reads units from both PREFIX/lib/systemd/system directories.
set(unit_dir "${CMAKE_INSTALL_PREFIX}/lib/systemd/system")
set(RELIVED "${CMAKE_INSTALL_PREFIX}/sbin/relived")
set(DOCDIR "${CMAKE_INSTALL_PREFIX}/share/doc/relive")
foreach(unit relived.service relived-ha@.service)
  configure_file("${RELIVE_UNIT_SOURCES}/${unit}.in" "${RELIVE_UNIT_BUILD}/${unit}"
                 @ONLY)
  file(INSTALL "${RELIVE_UNIT_BUILD}/${unit}" DESTINATION "${unit_dir}"
       PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
endforeach()
