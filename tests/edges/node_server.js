// Known truth for node (libuv closes descriptors with raw syscalls): serve
// N requests to our own client, close everything, print what /proc says.
const http = require('http');
const fs = require('fs');
const n = parseInt(process.argv[2] || '200', 10);
const server = http.createServer((req, res) => res.end('ok'));
server.listen(0, '127.0.0.1', async () => {
  const port = server.address().port;
  const agent = new http.Agent({ keepAlive: false });
  for (let i = 0; i < n; i++) {
    await new Promise((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
        res.resume();
        res.on('end', resolve);
      }).on('error', reject);
    });
  }
  server.close(() => {
    setTimeout(() => {
      const fds = fs.readdirSync('/proc/self/fd').length - 1; // minus readdir's own
      console.log(`served ${n} kernel ${fds} pid ${process.pid}`);
      process.exit(0);
    }, 200);
  });
});
