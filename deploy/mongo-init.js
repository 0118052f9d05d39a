// mongo-init.js sets up the sharded MongoDB cluster of compose.sharded.yaml
// for trail. Run it with mongosh --nodb; it is idempotent, so running it
// again (or after a partial failure) is safe:
//
//   1. initiates the replica sets: cfg (config servers), shard1 and shard2;
//   2. adds both shards to the cluster through mongos;
//   3. creates the roles trailProducer and trailAuditor and their users;
//   4. creates trail's collections and shards records and ids on a hashed
//      _id (see "Shard keys" below).
//
// The cluster runs with keyfile authentication and has no users at first.
// A fresh replica set accepts nothing but its localhost exception, so this
// script authenticates everywhere as the cluster's internal __system user,
// whose password is the keyfile's content: that is what lets one job in its
// own container bootstrap every member. Afterwards use trail-admin.
//
// Environment: TRAIL_KEYFILE (default /keyfile/key), TRAIL_ADMIN_PASSWORD,
// TRAIL_PRODUCER_PASSWORD, TRAIL_AUDITOR_PASSWORD (all three required).
//
// Shard keys. records: one document per record, _id "<log>/<seq>", sharded
// on {_id: "hashed"}. Inserts spread evenly over the shards, and because the
// shard key is _id, the unique _id index is unique across the cluster: it
// is the (log, seq) fence that makes a stale writer's insert fail with a
// duplicate key. ids: one document per event id, _id = the event id, also
// sharded on {_id: "hashed"}, so event ids are unique across the cluster and
// across logs (the idempotency rule holds everywhere). A secondary unique
// index on records.id could only be unique per shard, hence the second
// collection. checkpoints and logs (one lease-and-head document per log)
// are small and stay unsharded on the database's primary shard.
//
// The collections are those of package mongo; the producer role below
// matches what that package does: it inserts records, ids and checkpoints
// and never updates them, updates only the logs documents, and deletes only
// its own id claims of a batch that never became visible.

const keyFile = process.env.TRAIL_KEYFILE || "/keyfile/key";
const cluster = {
  cfg: ["cfg-1:27019", "cfg-2:27019", "cfg-3:27019"],
  shard1: ["shard1-1:27018", "shard1-2:27018", "shard1-3:27018"],
  shard2: ["shard2-1:27018", "shard2-2:27018", "shard2-3:27018"],
  mongos: "mongos:27017",
  db: "trail",
  sharded: ["records", "ids"],
  unsharded: ["checkpoints", "logs"],
};

// BEGIN trail roles (docs/OPERATIONS.md shows this block verbatim; the deploy tests check both)
const trailRoles = [
  {
    "role": "trailProducer",
    "privileges": [
      { "resource": { "db": "trail", "collection": "records" }, "actions": ["find", "insert", "listIndexes", "createIndex"] },
      { "resource": { "db": "trail", "collection": "checkpoints" }, "actions": ["find", "insert", "listIndexes", "createIndex"] },
      { "resource": { "db": "trail", "collection": "ids" }, "actions": ["find", "insert", "remove", "listIndexes", "createIndex"] },
      { "resource": { "db": "trail", "collection": "logs" }, "actions": ["find", "insert", "update", "listIndexes", "createIndex"] }
    ],
    "roles": []
  },
  {
    "role": "trailAuditor",
    "privileges": [
      { "resource": { "db": "trail", "collection": "records" }, "actions": ["find"] },
      { "resource": { "db": "trail", "collection": "checkpoints" }, "actions": ["find"] },
      { "resource": { "db": "trail", "collection": "ids" }, "actions": ["find"] },
      { "resource": { "db": "trail", "collection": "logs" }, "actions": ["find"] }
    ],
    "roles": []
  }
];
// END trail roles

const users = [
  { user: "trail-admin", env: "TRAIL_ADMIN_PASSWORD", roles: [{ role: "root", db: "admin" }] },
  { user: "trail-producer", env: "TRAIL_PRODUCER_PASSWORD", roles: [{ role: "trailProducer", db: "admin" }] },
  { user: "trail-auditor", env: "TRAIL_AUDITOR_PASSWORD", roles: [{ role: "trailAuditor", db: "admin" }] },
];

const fs = require("fs");
const key = fs.readFileSync(keyFile, "utf8").replace(/\s+/g, "");

function say(msg) {
  print(new Date().toISOString() + " mongo-init: " + msg);
}

// dial returns an authenticated connection to host, retrying while the
// server starts (up to five minutes).
function dial(host) {
  const deadline = Date.now() + 5 * 60 * 1000;
  for (;;) {
    try {
      const conn = new Mongo("mongodb://" + host + "/?directConnection=true&serverSelectionTimeoutMS=5000");
      const local = conn.getDB("local");
      local.auth("__system", key);
      check(local.runCommand({ ping: 1 }), "ping");
      return conn;
    } catch (e) {
      if (Date.now() > deadline) {
        throw new Error("cannot connect to " + host + ": " + e.message);
      }
      say("waiting for " + host + " (" + e.message + ")");
      sleep(2000);
    }
  }
}

// command runs cmd on db and returns its reply; mongosh throws on a command
// error, which this turns back into the reply ({ok: 0, code, errmsg}).
function command(db, cmd) {
  try {
    return db.runCommand(cmd);
  } catch (e) {
    if (e.code === undefined) {
      throw e;
    }
    return { ok: 0, code: e.code, codeName: e.codeName, errmsg: e.message };
  }
}

function check(res, what) {
  if (!res.ok) {
    throw new Error(what + ": " + JSON.stringify(res));
  }
  return res;
}

// initiate initiates the replica set name on its members unless it already
// is, then waits for it to elect a primary.
function initiate(name, members, configsvr) {
  const admin = dial(members[0]).getDB("admin");
  const status = command(admin, { replSetGetStatus: 1 });
  if (status.ok) {
    say("replica set " + name + " is already initiated");
  } else if (status.code === 94) { // NotYetInitialized
    say("initiating replica set " + name);
    check(command(admin, {
      replSetInitiate: {
        _id: name,
        configsvr: configsvr,
        members: members.map((host, i) => ({ _id: i, host: host })),
      },
    }), "replSetInitiate " + name);
  } else {
    check(status, "replSetGetStatus " + name);
  }
  const deadline = Date.now() + 5 * 60 * 1000;
  for (;;) {
    const s = command(admin, { replSetGetStatus: 1 });
    if (s.ok && s.members.some((m) => m.stateStr === "PRIMARY")) {
      say("replica set " + name + " has a primary");
      return;
    }
    if (Date.now() > deadline) {
      throw new Error("replica set " + name + " elected no primary: " + JSON.stringify(s));
    }
    sleep(1000);
  }
}

function passwordOf(u) {
  const pwd = process.env[u.env];
  if (!pwd) {
    throw new Error(u.env + " is not set: it is the password of MongoDB user " + u.user);
  }
  return pwd;
}

initiate("cfg", cluster.cfg, true);
initiate("shard1", cluster.shard1, false);
initiate("shard2", cluster.shard2, false);

const mongos = dial(cluster.mongos);
const admin = mongos.getDB("admin");

const shards = check(command(admin, { listShards: 1 }), "listShards").shards.map((s) => s._id);
for (const name of ["shard1", "shard2"]) {
  if (shards.includes(name)) {
    say("shard " + name + " is already added");
    continue;
  }
  say("adding shard " + name);
  check(command(admin, { addShard: name + "/" + cluster[name].join(","), name: name }), "addShard " + name);
}

for (const r of trailRoles) {
  const spec = { privileges: r.privileges, roles: r.roles };
  if (admin.getRole(r.role)) {
    say("updating role " + r.role);
    admin.updateRole(r.role, spec);
  } else {
    say("creating role " + r.role);
    admin.createRole(Object.assign({ role: r.role }, spec));
  }
}

for (const u of users) {
  const pwd = passwordOf(u);
  if (admin.getUser(u.user)) {
    say("updating user " + u.user);
    admin.updateUser(u.user, { pwd: pwd, roles: u.roles });
  } else {
    say("creating user " + u.user);
    admin.createUser({ user: u.user, pwd: pwd, roles: u.roles });
  }
}

check(command(admin, { enableSharding: cluster.db }), "enableSharding");
const trailDB = mongos.getDB(cluster.db);
for (const name of cluster.sharded.concat(cluster.unsharded)) {
  const res = command(trailDB, { create: name });
  if (!res.ok && res.code !== 48) { // 48: NamespaceExists
    check(res, "create " + name);
  }
}
for (const name of cluster.sharded) {
  const ns = cluster.db + "." + name;
  if (mongos.getDB("config").collections.findOne({ _id: ns, key: { _id: "hashed" } })) {
    say(ns + " is already sharded on {_id: \"hashed\"}");
    continue;
  }
  say("sharding " + ns + " on {_id: \"hashed\"}");
  check(command(admin, { shardCollection: ns, key: { _id: "hashed" } }), "shardCollection " + ns);
}

say("done: shards " + JSON.stringify(check(command(admin, { listShards: 1 }), "listShards").shards.map((s) => s._id)));
