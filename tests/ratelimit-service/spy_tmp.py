import service, sys, os, traceback
fd = os.open("/tmp/gb_spy.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
orig = service.Service.should_rate_limit
def srl(self, data, context):
    try:
        r = orig(self, data, context)
        if r is None: os.write(fd, b"NONE\n")
        return r
    except BaseException as e:
        os.write(fd, f"ERR {type(e).__name__} {e} {context.time_remaining()}\n".encode())
        raise
service.Service.should_rate_limit = srl
service.main()
